"""What ``kdoctor demo`` starts on one machine, also used by the tests and benchmarks: a private
redis-server, an nginx, a dnsmasq, and a local cluster of coordinator and worker processes."""
