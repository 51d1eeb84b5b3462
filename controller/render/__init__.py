"""``switchyard render``: the stock servers' configuration (freeswitch/conf, janus/conf) from the settings."""
