"""The appliance image's boot-time side: the config medium and host networking."""
