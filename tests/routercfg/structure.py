"""Structural checks of Junos, EOS and IOS-XR output against each vendor's documented
syntax: balanced blocks, known statements in each block, valid prefixes, and every
referenced policy / prefix list / route map defined (and every definition used).

Each checker returns a list of problems (empty when the text is well formed).
"""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network

# ----------------------------------------------------------------------------- Junos

JUNOS_CHILDREN: dict[str, set[str]] = {
    "": {"policy-options", "protocols", "routing-options"},
    "policy-options": {"policy-statement"},
    "policy-statement": {"term", "then"},
    "term": {"from", "then"},
    "from": {"family", "route-filter", "protocol"},
    "then": {"accept", "reject", "load-balance"},
    "protocols": {"bgp"},
    "bgp": {"group", "path-selection"},
    "group": {"type", "export", "import", "multipath", "neighbor"},
    "neighbor": {"description", "local-address", "peer-as", "import", "export", "hold-time",
                 "authentication-key", "multihop", "bfd-liveness-detection",
                 "graceful-restart", "family"},
    "multihop": {"ttl"},
    "bfd-liveness-detection": {"minimum-receive-interval", "multiplier", "session-mode",
                               "transmit-interval"},
    "transmit-interval": {"minimum-interval"},
    "family": {"unicast"},
    "unicast": {"prefix-limit"},
    "prefix-limit": {"maximum", "teardown"},
    "routing-options": {"autonomous-system", "router-id", "forwarding-table"},
    "forwarding-table": {"export"},
}
"""Statements allowed in each block (block named by its first word), per the Junos
configuration hierarchy of the statements we emit."""


def check_junos(text: str) -> list[str]:
    """Problems in a Junos hierarchical config."""
    problems: list[str] = []
    stack: list[tuple[str, str]] = []  # (kind, full header)
    defined: set[str] = set()
    referenced: set[str] = set()
    family_of_term: str | None = None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parent = stack[-1][0] if stack else ""
        if line == "}":
            if not stack:
                problems.append(f"line {n}: '}}' without an open block")
            else:
                stack.pop()
            continue
        if not line.endswith(("{", ";")):
            problems.append(f"line {n}: statement must end with '{{' or ';': {line}")
            continue
        words = line.rstrip("{;").split()
        kind = words[0]
        if kind not in JUNOS_CHILDREN.get(parent, set()):
            problems.append(f"line {n}: {kind!r} is not a statement of {parent or 'top'}")
        if kind == "policy-statement":
            defined.add(words[1])
        if kind in ("import", "export"):
            referenced.add(words[1])
        if kind == "neighbor":
            _check_address(words[1], n, problems)
        if kind == "term":
            family_of_term = None
        if kind == "family" and parent == "from":
            family_of_term = words[1]
        if kind == "route-filter":
            problems += _junos_route_filter(words, family_of_term, n)
        if line.endswith("{"):
            stack.append((kind, line))
    if stack:
        problems.append(f"unclosed blocks at end: {[h for _, h in stack]}")
    problems += [f"policy {p} is referenced but not defined" for p in referenced - defined]
    problems += [f"policy {p} is defined but never used" for p in defined - referenced]
    return problems


def _junos_route_filter(words: list[str], family: str | None, n: int) -> list[str]:
    try:
        net = ip_network(words[1])
    except (IndexError, ValueError):
        return [f"line {n}: route-filter needs a prefix: {' '.join(words)}"]
    problems = []
    if family is not None and {"inet": 4, "inet6": 6}.get(family) != net.version:
        problems.append(f"line {n}: {net} does not belong to family {family}")
    match = words[2:]
    if match == ["exact"]:
        return problems
    if len(match) == 2 and match[0] == "prefix-length-range":
        m = re.fullmatch(r"/(\d+)-/(\d+)", match[1])
        if m and net.prefixlen <= int(m.group(1)) <= int(m.group(2)) <= net.max_prefixlen:
            return problems
    return [*problems, f"line {n}: bad route-filter match {' '.join(match)}"]


def _check_address(text: str, n: int, problems: list[str]) -> None:
    try:
        ip_address(text)
    except ValueError:
        problems.append(f"line {n}: {text!r} is not an IP address")


# ----------------------------------------------------------------------------- EOS

EOS_NEIGHBOR = {"remote-as", "description", "timers", "password", "ebgp-multihop", "bfd",
                "graceful-restart-helper", "maximum-routes", "update-source"}
EOS_AF_NEIGHBOR = {"activate", "route-map", "default-originate"}
EOS_BGP = {"router-id", "no", "maximum-paths", "bgp", "neighbor", "address-family"}


def check_eos(text: str) -> list[str]:
    """Problems in an EOS running-config fragment."""
    problems: list[str] = []
    lists: dict[str, int] = {}
    maps: set[str] = set()
    used_lists: dict[str, int] = {}
    used_maps: set[str] = set()
    remote_as: set[str] = set()
    activated: set[str] = set()
    block: list[str] = []
    current_list = ""
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.strip().startswith("!"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        words = raw.split()
        if indent % 3:
            problems.append(f"line {n}: indentation {indent} is not a multiple of 3")
        level = indent // 3
        block = [*block[:level], " ".join(words[:2])]
        if level == 0:
            if words[:1] == ["router"] and words[1] == "bgp":
                continue
            if words[1:2] == ["prefix-list"] and words[0] in ("ip", "ipv6"):
                current_list = words[2]
                lists[current_list] = 4 if words[0] == "ip" else 6
            elif words[0] == "route-map" and words[2] in ("permit", "deny"):
                maps.add(words[1])
            else:
                problems.append(f"line {n}: unknown top-level statement {raw!r}")
        elif block[0].endswith("prefix-list"):
            problems += _eos_seq(words, lists[current_list], n)
        elif block[0].startswith("route-map"):
            if words[:3] in (["match", "ip", "address"], ["match", "ipv6", "address"]):
                used_lists[words[4]] = 4 if words[1] == "ip" else 6
            else:
                problems.append(f"line {n}: unknown route-map clause {raw!r}")
        elif level == 1:
            if words[0] not in EOS_BGP:
                problems.append(f"line {n}: {words[0]!r} is not a router bgp statement")
            if words[0] == "neighbor":
                _check_address(words[1], n, problems)
                if words[2] not in EOS_NEIGHBOR:
                    problems.append(f"line {n}: unknown neighbor knob {words[2]!r}")
                if words[2] == "remote-as":
                    remote_as.add(words[1])
            if words[0] == "address-family" and words[1] not in ("ipv4", "ipv6"):
                problems.append(f"line {n}: unknown address family {words[1]}")
        elif level == 2 and block[1].startswith("address-family"):
            if words[0] != "neighbor" or words[2] not in EOS_AF_NEIGHBOR:
                problems.append(f"line {n}: unknown address-family statement {raw!r}")
                continue
            if words[2] == "activate":
                activated.add(words[1])
            if words[2] == "route-map":
                used_maps.add(words[3])
                if words[4:] not in (["in"], ["out"]):
                    problems.append(f"line {n}: route-map direction must be in or out")
        else:
            problems.append(f"line {n}: unexpected nesting {raw!r}")
    for name, version in used_lists.items():
        if lists.get(name) != version:
            problems.append(f"prefix-list {name} (IPv{version}) is used but not defined")
    problems += [f"route-map {m} is used but not defined" for m in used_maps - maps]
    problems += [f"route-map {m} is defined but never used" for m in maps - used_maps]
    problems += [f"neighbor {a} is activated without remote-as" for a in activated - remote_as]
    return problems


def _eos_seq(words: list[str], version: int, n: int) -> list[str]:
    if words[:1] != ["seq"] or words[2] not in ("permit", "deny"):
        return [f"line {n}: prefix-list entry must be 'seq N permit|deny PREFIX'"]
    return _prefix_entry(words[3:], version, n)


def _prefix_entry(words: list[str], version: int, n: int) -> list[str]:
    try:
        net = ip_network(words[0])
    except ValueError:
        return [f"line {n}: {words[0]!r} is not a prefix"]
    if net.version != version:
        return [f"line {n}: {net} in an IPv{version} list"]
    rest = words[1:]
    for key in ("ge", "le"):
        if key in rest:
            value = int(rest[rest.index(key) + 1])
            if not net.prefixlen < value <= net.max_prefixlen:
                return [f"line {n}: {key} {value} out of range for {net}"]
    return []


# ----------------------------------------------------------------------------- IOS-XR

XR_NEIGHBOR = {"remote-as", "description", "timers", "password", "ebgp-multihop", "bfd",
               "update-source", "address-family", "!"}
XR_NEIGHBOR_AF = {"route-policy", "maximum-prefix", "default-originate", "!"}


def check_iosxr(text: str) -> list[str]:
    """Problems in an IOS-XR config (RPL sets and policies, router bgp)."""
    problems: list[str] = []
    sets: set[str] = set()
    policies: set[str] = set()
    used_sets: set[str] = set()
    used_policies: set[str] = set()
    global_afs: set[str] = set()
    neighbor_afs: set[str] = set()
    lines = [(n, raw) for n, raw in enumerate(text.splitlines(), start=1)
             if raw.strip() and not (raw.startswith("!") and raw.strip() != "!")]
    i = 0
    while i < len(lines):
        n, raw = lines[i]
        words = raw.split()
        if words[0] == "prefix-set":
            sets.add(words[1])
            end = _until(lines, i, "end-set", problems)
            entries = [r.strip() for _, r in lines[i + 1:end]]
            for k, entry in enumerate(entries):
                last = k == len(entries) - 1
                if entry.endswith(",") == last:
                    problems.append(f"line {n}: prefix-set {words[1]} entries need commas "
                                    "between them and none after the last")
                problems += _prefix_entry(entry.rstrip(",").split(),
                                          ip_network(entry.split()[0].rstrip(",")).version, n)
            i = end + 1
        elif words[0] == "route-policy":
            policies.add(words[1])
            end = _until(lines, i, "end-policy", problems)
            depth = 0
            for m, body in lines[i + 1:end]:
                b = body.split()
                used_sets.update(b[j + 2] for j in range(len(b) - 2)
                                 if b[j] == "destination" and b[j + 1] == "in")
                depth += b[0] == "if"
                depth -= b[0] == "endif"
                if b[0] not in ("if", "else", "endif", "pass", "drop") or depth < 0:
                    problems.append(f"line {m}: unexpected RPL statement {body.strip()!r}")
            if depth:
                problems.append(f"line {n}: if/endif unbalanced in {words[1]}")
            i = end + 1
        elif words[:2] == ["router", "bgp"]:
            i = _xr_bgp(lines, i + 1, problems, used_policies, global_afs, neighbor_afs)
        elif words == ["!"]:
            i += 1
        else:
            problems.append(f"line {n}: unknown top-level statement {raw!r}")
            i += 1
    problems += [f"prefix-set {s} is used but not defined" for s in used_sets - sets]
    problems += [f"route-policy {p} is used but not defined" for p in used_policies - policies]
    problems += [f"route-policy {p} is defined but never used" for p in policies - used_policies]
    problems += [f"neighbor address-family {a} is not enabled under router bgp"
                 for a in neighbor_afs - global_afs]
    return problems


def _until(lines: list[tuple[int, str]], start: int, word: str, problems: list[str]) -> int:
    for j in range(start + 1, len(lines)):
        if lines[j][1].strip() == word:
            return j
    problems.append(f"line {lines[start][0]}: no {word} for {lines[start][1].strip()!r}")
    return len(lines) - 1


def _xr_bgp(lines: list[tuple[int, str]], i: int, problems: list[str], used: set[str],
            global_afs: set[str], neighbor_afs: set[str]) -> int:
    context = ""
    while i < len(lines):
        n, raw = lines[i]
        indent = len(raw) - len(raw.lstrip(" "))
        words = raw.split()
        if indent == 0:
            return i + 1 if words == ["!"] else i
        if indent == 1:
            context = words[0]
            if words[0] == "address-family":
                global_afs.add(" ".join(words[1:]))
            elif words[0] == "neighbor":
                _check_address(words[1], n, problems)
            elif words[0] not in ("bgp", "!"):
                problems.append(f"line {n}: {words[0]!r} is not a router bgp statement")
        elif indent == 2 and context == "neighbor":
            if words[0] not in XR_NEIGHBOR:
                problems.append(f"line {n}: unknown neighbor statement {words[0]!r}")
            if words[0] == "address-family":
                neighbor_afs.add(" ".join(words[1:]))
        elif indent == 2 and context == "address-family":
            if words[0] != "maximum-paths":
                problems.append(f"line {n}: unknown address-family statement {words[0]!r}")
        elif indent == 3 and context == "neighbor":
            if words[0] not in XR_NEIGHBOR_AF:
                problems.append(f"line {n}: unknown neighbor address-family statement")
            if words[0] == "route-policy":
                used.add(words[1])
                if words[2:] not in (["in"], ["out"]):
                    problems.append(f"line {n}: route-policy direction must be in or out")
        else:
            problems.append(f"line {n}: unexpected nesting {raw!r}")
        i += 1
    return i
