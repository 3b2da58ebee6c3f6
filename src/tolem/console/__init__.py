"""The operator console: server-rendered pages under /ops/ for support and accounting."""
