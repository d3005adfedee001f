"""The Dockerfile (deploy/docker) and the systemd unit (deploy/systemd)."""
import fnmatch
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import CACHE, HERE, NODE_MODULES, SRC, ZRING, duration_ms, iptables_env

DOCKERFILE = SRC / "deploy/docker/Dockerfile"
# What zring listens on with its defaults: outbound, inbound, HBONE, metrics,
# readiness (admin is on 127.0.0.1 only).
ZRING_PORTS = {15001, 15006, 15008, 15020, 15021}
# The system calls zring makes itself (io_uring operations do not pass
# through seccomp), measured with `strace -f` over the e2e scenarios
# hbone-bytes, hbone-rotation, reload-styles, drain, inbound and
# fd-exhaustion, and over a zring answering every admin, metrics and
# readiness endpoint (which added none): the unit's SystemCallFilter must
# allow every one.
ZRING_SYSCALLS = """
    access arch_prctl bind brk clone3 close eventfd2 execve exit exit_group
    fcntl futex getdents64 getpeername getrandom getsockname getsockopt
    inotify_add_watch inotify_init1 io_uring_enter io_uring_register
    io_uring_setup listen lseek madvise mmap mprotect mremap munmap
    newfstatat openat pipe2 pread64 prlimit64 read rseq rt_sigaction
    rt_sigprocmask set_robust_list set_tid_address setsockopt shutdown
    signalfd4 socket splice write
""".split()

def dockerfile_instructions(text):
    """[(line, INSTRUCTION, argument text)] with continuations joined."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out


def dockerignore_excludes(path):
    """Whether the build context leaves out path (relative, '/'-separated)."""
    ign = SRC / ".dockerignore"
    if not ign.exists():
        return False
    excluded = False
    for pat in ign.read_text().splitlines():
        pat = pat.strip()
        if not pat or pat.startswith("#"):
            continue
        neg = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        parts = path.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), pat) or
                  fnmatch.fnmatch("/".join(parts[:i]), pat.replace("**/", ""))
                  for i in range(1, len(parts) + 1))
        if hit:
            excluded = not neg
    return excluded


def parse_dockerfile():
    """(stages, facts, problems) of deploy/docker/Dockerfile. A stage is
    {image, name, runs}; facts: entrypoint, expose, script (where the
    iptables script lands), zring_from (stage, path zring is copied from)."""
    info, problems, stages = {}, [], []
    for n, word, rest in dockerfile_instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append({"image": m.group(1), "name": m.group(2), "runs": []})
        elif not stages:
            problems.append(f"Dockerfile:{n}: {word} before FROM")
        elif word == "RUN":
            stages[-1]["runs"].append(rest)
        elif word == "COPY":
            problems += parse_copy(n, rest, stages, info)
        elif word == "ENTRYPOINT":
            info["entrypoint"] = json.loads(rest)[0]
        elif word == "EXPOSE":
            info["expose"] = {int(p.split("/")[0]) for p in rest.split()}
    return stages, info, problems


def parse_copy(n, rest, stages, info):
    args = rest.split()
    flags = [a for a in args if a.startswith("--")]
    srcs, dest = [a for a in args if not a.startswith("--")][:-1], args[-1]
    frm = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
    problems = []
    if frm:
        if frm not in [s["name"] for s in stages[:-1]]:
            problems.append(f"Dockerfile:{n}: --from={frm} is not an earlier stage")
        if dest.endswith("/zring"):
            info["zring_from"] = (frm, srcs[0])
        return problems
    for s in srcs:
        if not (SRC / s).exists():
            problems.append(f"Dockerfile:{n}: COPY source {s} does not exist")
        elif s != "." and dockerignore_excludes(s):
            problems.append(f"Dockerfile:{n}: COPY source {s} is excluded by .dockerignore")
        if s.endswith("zring-iptables.sh"):
            info["script"] = dest
            mode = subprocess.run(["git", "-C", str(SRC), "ls-files", "-s", s],
                                  capture_output=True, text=True).stdout.split()
            if (mode[:1] or [oct((SRC / s).stat().st_mode)[-6:]])[0] != "100755":
                problems.append(f"Dockerfile:{n}: {s} is not mode 755, and COPY keeps the mode")
    return problems


def check_dockerfile(report, full=True):
    """Reports the Dockerfile checks (when full); returns its facts."""
    stages, info, problems = parse_dockerfile()
    if not full:
        return info
    names = [s["image"] for s in stages]
    if len(stages) != 2 or not names[0].startswith("debian:bookworm") or names[1] != "debian:bookworm-slim":
        problems.append(f"stages are {names}: want a debian:bookworm build stage and a "
                        "debian:bookworm-slim runtime (same release, so the libraries match)")
    if info.get("entrypoint") != "/usr/local/bin/zring":
        problems.append(f"ENTRYPOINT is {info.get('entrypoint')}, not the copied zring")
    if info.get("expose") != ZRING_PORTS:
        problems.append(f"EXPOSE {sorted(info.get('expose') or [])}, zring serves {sorted(ZRING_PORTS)}")
    if stages:
        problems += check_build_stage(stages[0], info)
    report.check("dockerfile: stages, COPY sources and context, entrypoint, ports", problems)
    if len(stages) == 2:
        report.check("dockerfile: runtime packages provide every library zring links",
                     check_runtime_libs(stages[1]))
        check_context_configures(report, stages[0])
    lint_dockerfile(report, DOCKERFILE)
    return info


def check_build_stage(stage, info):
    problems = []
    build = " && ".join(stage["runs"])
    m = re.search(r"meson install\b[^&]*?--destdir[= ](\S+)", build)
    prefix = re.search(r"--prefix=(\S+)", build)
    if not m or not prefix:
        return ["build stage: no `meson install --destdir` with a --prefix"]
    produced = f"{m.group(1)}{prefix.group(1)}/bin/zring"
    if info.get("zring_from", (None, None))[1] != produced:
        problems.append(f"runtime copies {info.get('zring_from')}, the build stage installs {produced}")
    if "scripts/setup.sh" not in build:
        problems.append("build stage does not run scripts/setup.sh (the AES-NI wolfSSL)")
    # rustls (ztunnel) sends 32-byte session-ticket nonces; a wolfSSL built
    # without --enable-ticket-nonce-malloc fails every tunnel to it.
    if "WOLFSSL_TICKET_NONCE_MALLOC" not in build:
        problems.append("build stage does not check that wolfSSL takes rustls's session tickets "
                        "(WOLFSSL_TICKET_NONCE_MALLOC in options.h)")
    return problems


def apt_installs(stage):
    pkgs = []
    for run in stage["runs"]:
        for m in re.finditer(r"apt-get install ((?:\s*[-\w.+=]+)+)", run):
            pkgs += [p for p in m.group(1).split() if not p.startswith("-")]
    return set(pkgs)


def base_image_packages():
    """Packages every Debian image has: the Essential ones and what they need."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Essential}\t${Package}\t${Pre-Depends}, ${Depends}\n"],
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        ess, pkg, deps = (line.split("\t") + ["", "", ""])[:3]
        if ess == "yes":
            names.add(pkg)
            names |= {re.sub(r"\(.*\)|:any", "", d).strip() for d in re.split(r"[,|]", deps)}
    return names - {""}


def check_runtime_libs(stage):
    r = subprocess.run(["readelf", "-d", str(ZRING)], capture_output=True, text=True)
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", r.stdout)
    if not needed:
        return [f"readelf -d {ZRING}: no NEEDED entries ({r.stderr.strip()})"]
    installed = apt_installs(stage)
    base = base_image_packages()
    ldcache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    problems, used = [], set()
    for lib in needed:
        # Linked statically in the image; sanitizer runtimes only in ASan builds.
        if lib.startswith(("libwolfssl", "libasan", "libubsan")):
            continue
        m = re.search(rf"^\s*{re.escape(lib)} \(.*\) => (\S+)", ldcache, re.M)
        pkg = None
        if m:
            for cand in (m.group(1), os.path.realpath(m.group(1))):
                s = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if s.returncode == 0:
                    pkg = s.stdout.split(":")[0]
                    break
        if not pkg:
            problems.append(f"{lib}: no Debian package found for it")
        elif pkg in installed:
            used.add(pkg)
        elif pkg not in base:
            problems.append(f"{lib} comes from {pkg}, which the runtime stage does not install")
    for extra in installed - used - {"iptables"}:
        problems.append(f"runtime stage installs {extra}, which zring does not link")
    return problems


def check_context_configures(report, stage):
    """Copy the build context as .dockerignore leaves it and run the build
    stage's `meson setup` in it: a file the build needs must not be ignored."""
    name = "dockerfile: the build context (after .dockerignore) configures with meson"
    meson = shutil.which("meson")
    m = re.search(r"meson setup (\S+)((?: -[-\w]+=?\S*)*)", " ".join(stage["runs"]))
    if not meson or not m:
        report.check(name, ["no meson, or no `meson setup` in the build stage"])
        return
    opts = [o for o in m.group(2).split() if not o.startswith("--prefix")]
    wolfssl = CACHE / "wolfssl"
    if (wolfssl / "lib").is_dir():
        opts.append(f"-Dwolfssl_prefix={wolfssl.resolve()}")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp) / "ctx"
        files = subprocess.run(["git", "-C", str(SRC), "ls-files", "--cached", "--others",
                                "--exclude-standard"], capture_output=True, text=True).stdout.split()
        for f in files:
            if (SRC / f).is_file() and not dockerignore_excludes(f):
                (ctx / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(SRC / f, ctx / f)
        r = subprocess.run([meson, "setup", str(Path(tmp) / "build")] + opts, cwd=ctx,
                           capture_output=True, text=True)
        tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
        report.check(f"{name} ({' '.join(opts)})", [] if r.returncode == 0 else tail)


def lint_dockerfile(report, df):
    name = "dockerfile: dockerfile-utils lint is clean"
    node = shutil.which("node")
    if not node or not (NODE_MODULES / "dockerfile-utils").is_dir():
        report.skip(name, f"node or {NODE_MODULES}/dockerfile-utils missing: run scripts/setup.sh")
        return
    r = subprocess.run([node, str(HERE / "check.js"), "dockerfile", str(NODE_MODULES), str(df)],
                       capture_output=True, text=True)
    report.check(name, [] if r.returncode == 0 else (r.stdout + r.stderr).splitlines())


# ------------------------------------------------------------------ systemd

def unit_values(text):
    vals = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            k, _, v = line.partition("=")
            vals.setdefault(k.strip(), []).append(v.strip())
    return vals


def env_file(path):
    vals = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            vals[k] = v
    return vals


def syscall_set(names):
    """Expand systemd syscall groups (@name) into syscall names."""
    out = set()
    for n in names:
        if n.startswith("@"):
            r = subprocess.run(["systemd-analyze", "syscall-filter", n, "--no-pager"],
                               capture_output=True, text=True)
            members = [l.strip() for l in r.stdout.splitlines()[1:]
                       if l.strip() and not l.strip().startswith("#")]
            out |= syscall_set(members)
        else:
            out.add(n)
    return out


def check_systemd(report, known):
    unit = SRC / "deploy/systemd/zring.service"
    text = unit.read_text()
    vals = unit_values(text)
    default = env_file(SRC / "deploy/systemd/zring.default")
    script_env = iptables_env()
    problems = []
    for k, v in default.items():
        if k.startswith("ZRING_IPTABLES_"):
            if k not in script_env:
                problems.append(f"zring.default: {k} is not read by zring-iptables.sh")
        elif k not in known:
            problems.append(f"zring.default: {k} is not a zring option")
    drain = duration_ms(default.get("ZRING_DRAIN_TIMEOUT", "5s"))
    stop = duration_ms(vals.get("TimeoutStopSec", ["90s"])[0])
    if drain is None or stop is None or drain >= stop:
        problems.append(f"TimeoutStopSec {vals.get('TimeoutStopSec')} must exceed the drain "
                        f"timeout {default.get('ZRING_DRAIN_TIMEOUT', '5s')}")
    if "22" not in default.get("ZRING_IPTABLES_EXCLUDE_INBOUND_PORTS", "").split(","):
        problems.append("zring.default: inbound port 22 (SSH) must stay exempt from capture")
    if vals.get("Type") != ["exec"]:
        problems.append("Type must be exec: zring does not speak sd_notify")
    if vals.get("KillSignal") != ["SIGTERM"]:
        problems.append("KillSignal must be SIGTERM (zring's drain)")
    if (vals.get("ProcSubset") or [""])[-1] == "pid":
        problems.append("ProcSubset=pid hides /proc/stat, whose boot time zring needs for the "
                        "metric process_start_time_seconds")
    amb = set(" ".join(vals.get("AmbientCapabilities", [])).split())
    bound = set(" ".join(vals.get("CapabilityBoundingSet", [])).split())
    if amb != {"CAP_NET_ADMIN"} or not amb <= bound:
        problems.append(f"AmbientCapabilities {sorted(amb)} / bounding {sorted(bound)}: want CAP_NET_ADMIN")
    sysusers = (SRC / "deploy/systemd/zring.sysusers").read_text()
    user = re.search(r"^u\s+(\S+)", sysusers, re.M)
    if not user or vals.get("User") != [user.group(1)]:
        problems.append(f"User {vals.get('User')} is not the user zring.sysusers creates")
    for key, path in [("ExecStartPre", "zring-iptables.sh install"), ("ExecStopPost", "zring-iptables.sh remove")]:
        if not any(v.startswith("+") and v.endswith(path) for v in vals.get(key, [])):
            problems.append(f"{key} must run '+…/{path}' (with full privileges)")
    # Every install line in the header puts a file where the unit expects it.
    installs = dict(re.findall(r"install -m 07\d\d (\S+) (\S+)", text))
    for exe in [vals["ExecStart"][0]] + [v.lstrip("+").split()[0] for v in vals.get("ExecStartPre", [])]:
        if exe not in installs.values():
            problems.append(f"{exe}: no install line in the unit's header puts it there")
    report.check("systemd: unit agrees with zring, the script and its environment file", problems)

    if not shutil.which("systemd-analyze"):
        report.skip("systemd: systemd-analyze verify", "systemd-analyze not installed (package systemd)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # verify checks that each Exec binary exists: point them at this tree.
        local = text
        for src, dest in installs.items():
            local = local.replace(dest, str((SRC / src) if not src.startswith("build/") else ZRING))
        (Path(tmp) / "zring.service").write_text(local)
        r = subprocess.run(["systemd-analyze", "verify", str(Path(tmp) / "zring.service")],
                           capture_output=True, text=True)
        report.check("systemd: systemd-analyze verify", [] if r.returncode == 0 and not r.stderr.strip()
                     else (r.stdout + r.stderr).strip().splitlines())
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=25",
                            "--no-pager", str(Path(tmp) / "zring.service")], capture_output=True, text=True)
        level = re.search(r"Overall exposure level for \S+: (\S+ \S+)", r.stdout)
        report.check(f"systemd: offline security review, exposure <= 2.5 "
                     f"(is {level.group(1) if level else '?'})",
                     [] if r.returncode == 0 else [r.stderr.strip() or "exposure above 2.5"])
    allow, deny = set(), set()
    for line in vals.get("SystemCallFilter", []):
        (deny if line.startswith("~") else allow).update(syscall_set(line.lstrip("~").split()))
    ok = allow - deny
    missing = [s for s in ZRING_SYSCALLS if s not in ok]
    report.check("systemd: SystemCallFilter allows io_uring and zring's other calls",
                 [f"{s} is filtered out" for s in missing])
