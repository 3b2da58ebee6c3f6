"""The gateway: /gw/{provider} calls dispatched to protocol adapters, and their request journal."""
