"""Real test servers: HTTP/1.1 (stalling, status codes, recording), HTTP/2, TLS and mTLS."""
