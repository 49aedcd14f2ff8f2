"""The namespace lab: topologies of network namespaces, veth and bridges with real daemons."""
