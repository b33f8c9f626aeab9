"""A DNS server on loopback for the federation suite (dnslib): answers the records given on
the command line, NXDOMAIN for any other name, so that Prosody (through libunbound) and xmppd
(through hickory) find each other by SRV records as on the Internet, without leaving the
machine.

    python dns.py ADDRESS PORT "name. SRV prio weight port target." "name. A 1.2.3.4" ...
"""

import sys
import time

from dnslib import QTYPE, RCODE, RR, SRV, A
from dnslib.server import BaseResolver, DNSServer


class Zone(BaseResolver):
    def __init__(self, lines):
        self.records = []
        for line in lines:
            name, kind, *data = line.split()
            self.records.append((name.lower(), kind, data))

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        kind = QTYPE[request.q.qtype]
        known = False
        for n, k, data in self.records:
            if n != name:
                continue
            known = True
            if k != kind:
                continue
            if k == "SRV":
                prio, weight, port, target = data
                rdata = SRV(int(prio), int(weight), int(port), target)
            else:
                rdata = A(data[0])
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, k), rdata=rdata, ttl=60))
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def main():
    address, port, *lines = sys.argv[1:]
    zone = Zone(lines)
    for tcp in (False, True):
        DNSServer(zone, address=address, port=int(port), tcp=tcp).start_thread()
    print("dns ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
