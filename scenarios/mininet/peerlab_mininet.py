#!/usr/bin/python3
"""Runs one peerlab scenario on a Mininet star; `peerlab run --on mininet` calls it.

Usage (as root, with the system Python): /usr/bin/python3 peerlab_mininet.py PLAN.json

The plan (written by src/run/mininet.rs) names the `peerlab` binary, the hosts
(Mininet name, IP, upload/download in Mbit/s or null for unlimited, the
`peerlab node` arguments), the start order, the faults and what "done"
means. The driver:

1. cleans up leftovers of an earlier run (`mn -c`), builds one LinuxBridge
   switch with no controller and one host per scenario host, each link
   shaped with htb: the host's upload rate on the host-side interface and
   its download rate on the switch-side one (egress of each side), one
   queue per other host served in turn when the plan's queue is "fair";
2. starts every `peerlab node` inside its host's namespace (mnexec -a) with
   a start barrier (--start-file): each opens its storage and listens, then
   waits; once every listener is up the driver writes the start file with a
   common epoch a moment ahead, so all downloads start together and no
   node's start-up is timed;
3. applies the faults at their times (misbehaviour due at 0 s just before
   the release): hang = SIGSTOP, resume = SIGCONT,
   corrupt/silent/lying/flood = the fault's "control" line written to the node's
   control file (DATA/misbehave) then SIGUSR1, honest = SIGUSR2,
   crash = SIGKILL, restart = the same command again, leave = SIGTERM,
   join = start again, link-down/up = `ip link set IF down/up` on the
   switch side, bandwidth = new htb rates on both sides;
4. waits until every wanted event is in its host's events.jsonl, or the
   deadline; then stops the nodes and ALWAYS tears the network down (also on
   SIGINT/SIGTERM), and writes RESULT.json next to the plan: the epoch, which
   faults were applied, and how the run ended.
"""

import json
import os
import signal
import subprocess
import sys
import time

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo

PIDS = "/run/peerlab-mininet.pids"  # this driver's processes, for cleanup
TICK = 0.02
GRACE = 3.0
START_PATIENCE = 120.0


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def cleanup(hosts):
    """`mn -c` for this driver only: ends the processes an earlier, killed
    run left (recorded in PIDS, checked by their command line) and deletes
    the interfaces and bridge it would collide with."""
    try:
        with open(PIDS) as f:
            pids = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        pids = []
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read()
            if b"mininet:" in cmdline or b"peerlab" in cmdline:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
    for name in ["%s-eth0" % h["mn"] for h in hosts] + ["s1"]:
        if os.path.exists("/sys/class/net/" + name):
            subprocess.call(["ip", "link", "del", name], stderr=subprocess.DEVNULL)
    try:
        os.remove(PIDS)
    except OSError:
        pass


def record_pids(pids):
    with open(PIDS, "w") as f:
        f.write(" ".join(str(p) for p in pids if p))


def bw(mbit):
    """A shaped rate (Mbit/s), None when unlimited (above 1000 Mbit/s htb
    on veth is no longer the bottleneck)."""
    return None if mbit is None or mbit > 1000 else mbit


def shape(intf, mbit, peers, field, fair):
    """Shapes intf's egress to mbit (None: unshaped) with htb.

    fair: one htb class per other host (matched on the packet's `field`,
    "dst" on a host's upload side, "src" on its download side), all with the
    same guaranteed share and the whole rate as ceiling, so backlogged
    classes split the link evenly (htb's deficit round robin) and a packet
    to an idle host waits for one round, not behind another host's queue:
    what a fair-queueing link (fq_codel, Linux's default qdisc) gives.
    Otherwise a single class: one FIFO that every flow shares.
    A class that exists is changed in place, so a rate change drops nothing."""
    exists = "htb 5:" in intf.cmd("tc qdisc show dev " + intf.name)
    if mbit is None:
        if exists:
            intf.cmd("tc qdisc del dev %s root" % intf.name)
        return
    classes = len(peers) + 1 if fair else 1
    share = mbit / classes
    verb = "change" if exists else "add"
    cmds = []
    if not exists:
        cmds.append("qdisc add dev {d} root handle 5: htb default 2")
    cmds.append("class %s dev {d} parent 5: classid 5:1 htb rate %.6fmbit ceil %.6fmbit burst 15k"
                % (verb, mbit, mbit))
    # 5:2 takes what no filter matches (ARP); with fair=False it is the FIFO.
    cmds.append("class %s dev {d} parent 5:1 classid 5:2 htb rate %.6fmbit ceil %.6fmbit "
                "burst 15k quantum 1514" % (verb, share if fair else mbit, mbit))
    if fair:
        for k, ip in enumerate(peers):
            cid = "5:%x" % (k + 3)
            cmds.append("class %s dev {d} parent 5:1 classid %s htb rate %.6fmbit ceil %.6fmbit "
                        "burst 15k quantum 1514" % (verb, cid, share, mbit))
            if not exists:
                cmds.append("filter add dev {d} parent 5: protocol ip prio 1 u32 match ip %s %s/32 "
                            "flowid %s" % (field, ip, cid))
    batch = "\n".join(c.format(d=intf.name) for c in cmds) + "\n"
    out = intf.node.popen(["tc", "-batch", "-"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text, _ = out.communicate(batch.encode())
    if out.returncode != 0:
        raise RuntimeError("tc on %s failed: %s" % (intf.name, text.decode().strip()))


class Star(Topo):
    def build(self, hosts):
        switch = self.addSwitch("s1")
        for h in hosts:
            self.addHost(h["mn"], ip=h["ip"] + "/8")
            self.addLink(h["mn"], switch)


class Run:
    def __init__(self, plan, net, start_file):
        self.plan, self.net = plan, net
        self.procs = [None] * len(plan["hosts"])
        self.epoch = None
        self.start_file = start_file
        if os.path.exists(start_file):
            os.remove(start_file)

    def node(self, i):
        return self.net.get(self.plan["hosts"][i]["mn"])

    def start(self, i):
        h = self.plan["hosts"][i]
        os.makedirs(h["data"], exist_ok=True)
        cmd = ["mnexec", "-a", str(self.node(i).pid), self.plan["binary"], "node",
               *h["args"], "--start-file", self.start_file]
        log = open(os.path.join(h["data"], "node.log"), "ab")
        self.procs[i] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        record_pids([self.node(k).pid for k in range(len(self.procs))]
                    + [p.pid for p in self.procs if p is not None])

    def listening(self, i):
        out = self.node(i).cmd("ss -Hltn sport = :%d" % self.plan["port"])
        return "LISTEN" in out

    def wait_listening(self, i):
        deadline = time.time() + START_PATIENCE
        while not self.listening(i):
            self.check_alive()
            if time.time() > deadline:
                raise RuntimeError("%s did not listen" % self.plan["hosts"][i]["name"])
            time.sleep(TICK)

    def check_alive(self):
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is not None:
                h = self.plan["hosts"][i]
                raise RuntimeError("node %s exited on its own (%s); see %s/node.log"
                                   % (h["name"], p.returncode, h["data"]))

    def signal(self, i, sig):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)

    def reap(self, i, patient):
        p, self.procs[i] = self.procs[i], None
        if p is None:
            return
        try:
            p.wait(GRACE if patient else 0.001)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def intfs(self, i):
        """The host-side and the switch-side interface of host i."""
        intf = self.node(i).defaultIntf()
        link = intf.link
        other = link.intf2 if link.intf1 is intf else link.intf1
        return intf, other

    def shape(self, i, up_mbit, down_mbit):
        """Host i's upload on its own interface's egress, its download on
        the switch side's; None leaves a direction unshaped."""
        ips = [h["ip"] for k, h in enumerate(self.plan["hosts"]) if k != i]
        fair = self.plan["queue"] == "fair"
        up, down = self.intfs(i)
        shape(up, bw(up_mbit), ips, "dst", fair)
        shape(down, bw(down_mbit), ips, "src", fair)

    def apply(self, f):
        i, kind = f["host"], f["kind"]
        if kind == "crash":
            self.signal(i, signal.SIGKILL)
            self.reap(i, False)
        elif kind == "leave":
            self.signal(i, signal.SIGTERM)
            self.signal(i, signal.SIGCONT)
            self.reap(i, True)
        elif kind in ("restart", "join"):
            if self.procs[i] is None:
                self.start(i)
        elif kind == "hang":
            self.signal(i, signal.SIGSTOP)
        elif kind == "resume":
            self.signal(i, signal.SIGCONT)
        elif kind == "honest":
            self.signal(i, signal.SIGUSR2)
        elif "control" in f:
            # A misbehaviour (corrupt, silent, lying, flood): the node reads
            # what to do from its control file on SIGUSR1.
            path = os.path.join(self.plan["hosts"][i]["data"], "misbehave")
            with open(path, "w") as c:
                c.write(f["control"] + "\n")
            self.signal(i, signal.SIGUSR1)
        elif kind in ("link-down", "link-up"):
            # The wire is cut at the switch: the host keeps its address and
            # routes, so its kernel retransmits into the cut (SYNs, segments)
            # as behind a broken access link, instead of failing every
            # connect at once as `ip link set` on its own side would.
            _, switch_side = self.intfs(i)
            switch_side.cmd("ip link set %s %s" % (switch_side, kind[5:]))
        elif kind == "bandwidth":
            # A key present = that direction changes; null = unlimited.
            h = self.plan["hosts"][i]
            h.update({k: f[k] for k in ("up_mbit", "down_mbit") if k in f})
            self.shape(i, h["up_mbit"], h["down_mbit"])
        else:
            raise RuntimeError("unknown fault " + kind)

    def done(self, offsets, seen):
        """Whether every wanted (host, event) appeared; reads only new lines."""
        for k, (i, event) in enumerate(self.plan["wait_for"]):
            if k in seen:
                continue
            path = os.path.join(self.plan["hosts"][i]["data"], "events.jsonl")
            try:
                with open(path, "rb") as f:
                    f.seek(offsets.get(k, 0))
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1
            offsets[k] = offsets.get(k, 0) + end
            if ('"%s"' % event).encode() in data[:end]:
                seen.add(k)
        return len(seen) == len(self.plan["wait_for"])

    def stop_all(self):
        for i in range(len(self.procs)):
            self.signal(i, signal.SIGTERM)
            self.signal(i, signal.SIGCONT)
        for i in range(len(self.procs)):
            self.reap(i, True)

    def go(self):
        for i, h in enumerate(self.plan["hosts"]):
            self.shape(i, h["up_mbit"], h["down_mbit"])
        for i in self.plan["order"]:
            self.start(i)
        for i in self.plan["wait_listening"]:
            self.wait_listening(i)
        # Misbehaviour due at the start is switched on before the release,
        # so a liar's first bitfield already lies (src/run/real.rs,
        # before_release); the nodes handle the signals before they listen.
        faults = sorted(self.plan["faults"], key=lambda f: (f["at_s"], f["host"]))
        early = [f for f in faults
                 if f["at_s"] == 0 and "control" in f and f["kind"] != "honest"]
        faults = [f for f in faults if f not in early]
        applied = []
        for f in early:
            self.apply(f)
            applied.append(f["kind"])
        margin_s = 0.1  # time for every node to read the start file
        self.epoch = time.time_ns() + int(margin_s * 1e9)
        t0 = time.monotonic() + margin_s
        tmp = self.start_file + ".partial"
        with open(tmp, "w") as f:
            f.write(str(self.epoch))
        os.rename(tmp, self.start_file)
        time.sleep(margin_s)
        offsets, seen = {}, set()
        while True:
            now = time.monotonic() - t0
            while faults and faults[0]["at_s"] <= now:
                f = faults.pop(0)
                self.apply(f)
                applied.append(f["kind"])
            self.check_alive()
            if self.done(offsets, seen):
                return "complete", applied
            if now >= self.plan["deadline_s"]:
                return "deadline", applied
            time.sleep(TICK)


def main():
    plan_path = sys.argv[1]
    with open(plan_path) as f:
        plan = json.load(f)
    result = {"outcome": "error", "applied": [], "epoch_unix_ns": None, "error": None}
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    setLogLevel("error")
    cleanup(plan["hosts"])  # leftovers of an earlier, killed run
    net = None
    run = None
    try:
        net = Mininet(topo=Star(hosts=plan["hosts"]), switch=LinuxBridge, controller=None,
                      autoStaticArp=True)
        net.start()
        start_file = os.path.join(os.path.dirname(os.path.abspath(plan_path)), "start")
        run = Run(plan, net, start_file)
        result["outcome"], result["applied"] = run.go()
    except Interrupted as e:
        result["outcome"], result["error"] = "interrupted", str(e)
    except Exception as e:  # reported to the Rust side, which prints it
        result["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if run is not None:
            result["epoch_unix_ns"] = run.epoch
            run.stop_all()
        if net is not None:
            net.stop()
        cleanup(plan["hosts"])
        out = os.path.join(os.path.dirname(os.path.abspath(plan_path)), "RESULT.json")
        with open(out, "w") as f:
            json.dump(result, f)
    return 0 if result["outcome"] == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
