"""Host networking of the appliance: `network.yaml` from the config medium -> systemd-networkd.

The operator describes NICs (matched by MAC and renamed), bonds and VLANs with
their static addresses and default routes; :func:`render` turns that into
``.link``, ``.netdev`` and ``.network`` files (pure: name -> text), written to
``/run/systemd/network`` at every boot so the read-only root never changes.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from speaker.config.base import Section
from speaker.config.load import ConfigError, ConfigIssue, ConfigUnreadableError, format_path
from speaker.config.types import IfName, Name

Mac = str
BondMode = Literal["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
                   "balance-tlb", "balance-alb"]


class LinkSettings(Section):
    """What every configured link (NIC, bond, VLAN) can carry."""

    name: IfName
    """Interface name (NICs are renamed to it)."""
    addresses: list[IPv4Interface | IPv6Interface] = []
    """Static addresses with prefix length, e.g. 192.0.2.2/24."""
    gateway: IPv4Address | None = None
    """IPv4 default route via this router."""
    gateway6: IPv6Address | None = None
    """IPv6 default route via this router."""
    dhcp: Literal["no", "yes", "ipv4", "ipv6"] = "no"
    mtu: int | None = Field(default=None, ge=576, le=9216)
    required_for_online: bool = True
    """Boot waits (up to 20 s) for this link before edge-speaker starts."""


class NicConfig(LinkSettings):
    """A physical NIC, found by its MAC address and given a stable name."""

    mac: Mac = Field(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class BondConfig(LinkSettings):
    """A bond of NICs (names from `interfaces`)."""

    mode: BondMode = "802.3ad"
    members: list[IfName] = Field(min_length=1)


class VlanConfig(LinkSettings):
    """An 802.1Q VLAN on a NIC or a bond."""

    parent: IfName
    id: int = Field(ge=1, le=4094)


class NetworkConfig(Section):
    """The whole `network.yaml`."""

    hostname: Name | None = None
    interfaces: list[NicConfig] = Field(min_length=1)
    bonds: list[BondConfig] = []
    vlans: list[VlanConfig] = []
    dns: list[IPv4Address | IPv6Address] = []
    ntp: list[Name] = []
    """NTP servers for systemd-timesyncd (host names or addresses)."""

    @model_validator(mode="after")
    def _consistent(self) -> NetworkConfig:
        names = [x.name for x in (*self.interfaces, *self.bonds, *self.vlans)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"link names used twice: {', '.join(dupes)}")
        macs = [i.mac.lower() for i in self.interfaces]
        if len(set(macs)) != len(macs):
            raise ValueError("two interfaces have the same mac")
        nics = {i.name for i in self.interfaces}
        bonded = [m for b in self.bonds for m in b.members]
        for member in bonded:
            if member not in nics:
                raise ValueError(f"bond member {member!r} is not one of the interfaces")
        if len(set(bonded)) != len(bonded):
            raise ValueError("an interface is a member of two bonds")
        for nic in self.interfaces:
            if nic.name in bonded and (nic.addresses or nic.gateway or nic.gateway6
                                       or nic.dhcp != "no"):
                raise ValueError(f"interface {nic.name} is a bond member: put its addresses "
                                 "on the bond")
        for vlan in self.vlans:
            if vlan.parent not in nics | {b.name for b in self.bonds}:
                raise ValueError(f"vlan {vlan.name}: parent {vlan.parent!r} is no interface "
                                 "or bond")
        links: list[LinkSettings] = [*self.interfaces, *self.bonds, *self.vlans]
        if sum(1 for x in links if x.gateway) > 1 or sum(1 for x in links if x.gateway6) > 1:
            raise ValueError("at most one gateway and one gateway6 in the whole file")
        return self


def parse_network(text: str, source: str = "network.yaml") -> NetworkConfig:
    """Parse and validate; ConfigError lists every issue with its dotted path."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigUnreadableError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigUnreadableError(f"{source}: the top level must be a mapping")
    try:
        return NetworkConfig.model_validate(data)
    except ValidationError as exc:
        issues = [ConfigIssue(format_path(tuple(e["loc"])),
                              str(e["msg"]).removeprefix("Value error, "))
                  for e in exc.errors()]
        raise ConfigError(source, issues) from None


def _network_section(link: LinkSettings, dns: list[str], ntp: list[str],
                     vlans: list[str]) -> list[str]:
    lines = ["[Network]", f"DHCP={link.dhcp}", "IPv6AcceptRA=no",
             "LinkLocalAddressing=ipv6", "ConfigureWithoutCarrier=yes"]
    lines += [f"Address={a}" for a in link.addresses]
    if link.gateway:
        lines.append(f"Gateway={link.gateway}")
    if link.gateway6:
        lines.append(f"Gateway={link.gateway6}")
    lines += [f"DNS={d}" for d in dns] + [f"NTP={n}" for n in ntp]
    lines += [f"VLAN={v}" for v in vlans]
    return lines


def _link_section(link: LinkSettings) -> list[str]:
    lines = ["[Link]", f"RequiredForOnline={'yes' if link.required_for_online else 'no'}"]
    if link.mtu:
        lines.append(f"MTUBytes={link.mtu}")
    return lines


def nic_names(cfg: NetworkConfig) -> dict[str, str]:
    """MAC (lower case) -> the name the NIC gets."""
    return {nic.mac.lower(): nic.name for nic in cfg.interfaces}


def render(cfg: NetworkConfig) -> dict[str, str]:
    """File name -> content for /run/systemd/network (sorted, deterministic)."""
    head = "# written by edge-speaker from the config medium's network.yaml\n"
    files: dict[str, str] = {}
    dns, ntp = [str(d) for d in cfg.dns], list(cfg.ntp)
    vlans_of: dict[str, list[str]] = {}
    for vlan in cfg.vlans:
        vlans_of.setdefault(vlan.parent, []).append(vlan.name)
    bond_of = {m: b.name for b in cfg.bonds for m in b.members}
    for nic in cfg.interfaces:
        files[f"10-es-{nic.name}.link"] = "\n".join(
            ["[Match]", f"MACAddress={nic.mac.lower()}", "", "[Link]", f"Name={nic.name}"])
        # by MAC, not name: networkd may see the NIC before udev has renamed it
        match = ["[Match]", f"MACAddress={nic.mac.lower()}", ""]
        if nic.name in bond_of:
            body = ["[Network]", f"Bond={bond_of[nic.name]}"]
        else:
            body = _network_section(nic, dns, ntp, vlans_of.get(nic.name, []))
        files[f"30-es-{nic.name}.network"] = "\n".join(
            [*match, *_link_section(nic), "", *body])
    for bond in cfg.bonds:
        extra = ["LACPTransmitRate=fast"] if bond.mode == "802.3ad" else []
        files[f"20-es-{bond.name}.netdev"] = "\n".join(
            ["[NetDev]", f"Name={bond.name}", "Kind=bond", "", "[Bond]", f"Mode={bond.mode}",
             "MIIMonitorSec=100ms", *extra])
        files[f"30-es-{bond.name}.network"] = "\n".join(
            ["[Match]", f"Name={bond.name}", "", *_link_section(bond), "",
             *_network_section(bond, dns, ntp, vlans_of.get(bond.name, []))])
    for vlan in cfg.vlans:
        files[f"20-es-{vlan.name}.netdev"] = "\n".join(
            ["[NetDev]", f"Name={vlan.name}", "Kind=vlan", "", "[VLAN]", f"Id={vlan.id}"])
        files[f"30-es-{vlan.name}.network"] = "\n".join(
            ["[Match]", f"Name={vlan.name}", "", *_link_section(vlan), "",
             *_network_section(vlan, dns, ntp, [])])
    return {name: head + text + "\n" for name, text in sorted(files.items())}
