#!/usr/bin/env python3
"""Writes S3's rosters straight into Prosody's internal storage (data/<host>/roster/<user>.dat):
users in groups of contacts+1, every member a `both` contact of every other member; or, with
HUBS > 0, users 0..HUBS each a `both` contact of every other user (USERS = HUBS + CONTACTS), the
same shapes as `xmppd-bench rosters`.

Used by bench/compare.sh because Prosody does not finish the same set-up through the protocol
in reasonable time (it rewrites a user's whole roster file on every change: 2,286 of 50,500
approvals after 500 s for 505 users with 100 contacts each). The S3 measurement itself (presence
waves) does not depend on how the rosters were made.

usage: prosody_rosters.py DATA_PATH HOST USERS CONTACTS PATTERN [HUBS]   (PATTERN like bench{})"""
import os
import sys


def encode(s):
    # Prosody's datamanager escapes everything but [a-zA-Z0-9] as %XX in path components.
    return "".join(c if c.isalnum() else "%%%02x" % ord(c) for c in s)


def contacts_of(i, users, contacts, hubs):
    if hubs == 0:
        g = i // (contacts + 1) * (contacts + 1)
        return [j for j in range(g, min(g + contacts + 1, users)) if j != i]
    if i < hubs:
        return list(range(hubs, users))
    return list(range(hubs))


def main(data, host, users, contacts, pattern, hubs="0"):
    users, contacts, hubs = int(users), int(contacts), int(hubs)
    if hubs and users != hubs + contacts:
        sys.exit("with HUBS, USERS must be HUBS + CONTACTS")
    folder = os.path.join(data, encode(host), "roster")
    os.makedirs(folder, exist_ok=True)
    for i in range(users):
        members = contacts_of(i, users, contacts, hubs)
        lines = ["return {", "\t[false] = {", '\t\t["version"] = 1;', '\t\t["pending"] = {};', "\t};"]
        for j in members:
            jid = pattern.replace("{}", str(j)) + "@" + host
            lines += [f'\t["{jid}"] = {{', '\t\t["groups"] = {};', '\t\t["subscription"] = "both";', "\t};"]
        lines.append("};")
        name = encode(pattern.replace("{}", str(i))) + ".dat"
        with open(os.path.join(folder, name), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:7])
