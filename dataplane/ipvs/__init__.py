"""IPVS forwarding: model (values), plan (pure diff), codec + kernel (netlink), detect."""
