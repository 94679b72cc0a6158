"""Node-side processes: worker entry, node identity, queue names, agent server, heartbeats."""
