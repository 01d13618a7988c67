"""Reading docker/ as Docker does, for the Docker tests (no tests here; no Docker engine needed).

* :func:`compose_config`: a compose file resolved by the compose CLI (``docker compose`` v2, or Debian's
  ``docker-compose`` v1) in a given environment, its services normalised across the two versions;
* :func:`parse_dockerfile`: a Dockerfile's stages and instructions (line continuations, comments, exec
  form, ``--flag=value`` options, ``ARG``/``ENV`` substitution in ``FROM`` and ``ENV``);
* :func:`dockerignore`: the predicate "this path is sent in the build context", with Docker's rules;
* :func:`container_settings`: the :class:`~tokensearch.settings.Settings` a container's environment gives.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.ci import in_ci
from tokensearch.local_server import ENV_PREFIX
from tokensearch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"

# -- compose ---------------------------------------------------------------------------------------------


def compose_cli() -> list[str]:
    """``docker compose`` (v2) or ``docker-compose`` (v1); without either the test is skipped, saying so, or
    fails in CI (scripts/test.sh installs Debian's docker-compose)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    why = "no compose CLI (docker compose / docker-compose) installed; CI requires it"
    if in_ci():
        pytest.fail(why + " (CI is set: apt-get install docker-compose)", pytrace=False)
    pytest.skip(why)


@dataclass
class Service:
    """One service of a resolved compose file, in one shape whichever CLI resolved it."""

    name: str
    raw: dict
    volume_names: set[str]

    @property
    def environment(self) -> dict[str, str]:
        env = self.raw.get("environment") or {}
        if isinstance(env, list):  # KEY=VALUE items
            env = dict(item.split("=", 1) for item in env)
        return {k: "" if v is None else str(v) for k, v in env.items()}

    @property
    def ports(self) -> set[tuple[str, str, int, str]]:
        """(host ip, published port, container port, protocol) of every published port."""
        out = set()
        for p in self.raw.get("ports") or []:
            if isinstance(p, dict):  # v2's long form
                out.add((p.get("host_ip", ""), str(p.get("published", "")), int(p["target"]), p.get("protocol", "tcp")))
            else:  # v1: "127.0.0.1:8000:8000/tcp", "8000:8000", "8000"
                spec, _, proto = str(p).partition("/")
                parts = spec.split(":")
                ip, published, target = ["", "", *parts][-3:]
                out.add((ip, published, int(target), proto or "tcp"))
        return out

    @property
    def mounts(self) -> dict[str, tuple[str, str, bool]]:
        """container path -> (kind "volume" | "bind", source, read-only)."""
        out = {}
        for v in self.raw.get("volumes") or []:
            if isinstance(v, dict):  # v2's long form
                out[v["target"]] = (v["type"], v["source"], bool(v.get("read_only", False)))
            else:  # v1: "index:/data/index:rw"
                source, target, *mode = str(v).split(":")
                kind = "volume" if source in self.volume_names else "bind"
                out[target] = (kind, source, "ro" in mode[0].split(",") if mode else False)
        return out

    @property
    def depends_on(self) -> dict[str, str]:
        """service -> condition."""
        deps = self.raw.get("depends_on") or {}
        if isinstance(deps, list):
            return {d: "service_started" for d in deps}
        return {d: (c or {}).get("condition", "service_started") for d, c in deps.items()}

    @property
    def dockerfile(self) -> Path:
        build = self.raw["build"]
        return Path(build["context"]) / build.get("dockerfile", "Dockerfile")

    @property
    def build_args(self) -> dict[str, str]:
        args = self.raw["build"].get("args") or {}
        if isinstance(args, list):
            args = dict(item.split("=", 1) for item in args)
        return {k: str(v) for k, v in args.items()}


@dataclass
class Compose:
    services: dict[str, Service]
    volumes: set[str]


def compose_config(file: Path, env: dict[str, str] | None = None, profiles: tuple[str, ...] = ()) -> Compose:
    """``<compose> -f file [--profile p ...] config`` with ``env`` as the only TOKENSEARCH_*/POSTGRES_*/MINIO_*
    variables (the user's shell), run from the repository root; its output parsed."""
    own = ("TOKENSEARCH_", "POSTGRES_", "MINIO_", "COMPOSE_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    cmd = [*compose_cli(), "-f", str(file)]
    for p in profiles:
        cmd += ["--profile", p]
    r = subprocess.run([*cmd, "config"], capture_output=True, text=True, env={**base, **(env or {})}, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    spec = yaml.safe_load(r.stdout)
    volumes = set(spec.get("volumes") or {})
    return Compose({n: Service(n, s, volumes) for n, s in spec["services"].items()}, volumes)


# -- Dockerfile ------------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def substitute(text: str, known: dict[str, str]) -> str:
    """``$VAR``, ``${VAR}`` and ``${VAR:-default}`` replaced from ``known`` (unknown ones, e.g. a base
    image's own variables, are left as written unless they have a default)."""

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        if name in known:
            return known[name]
        return m.group(2) if m.group(2) is not None else m.group(0)

    return _VAR.sub(one, text)


@dataclass
class Instruction:
    cmd: str  # upper case: FROM, RUN, ENV, ...
    flags: dict[str, str]  # leading --name=value options (COPY --from, HEALTHCHECK --interval, ...)
    args: str  # the rest, continuation lines joined as Docker joins them

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of the exec form (``CMD ["serve"]``), or None for the shell form."""
        if self.args.startswith("["):
            try:
                value = json.loads(self.args)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, list) else None
        return None

    def commands(self) -> list[list[str]]:
        """A shell-form RUN as its simple commands (split at ``&&``, ``;``, ``||``), each as argv."""
        lex = shlex.shlex(self.args, posix=True, punctuation_chars=True)
        lex.whitespace_split = True  # words as a shell cuts them (with the operators cut off)
        out: list[list[str]] = [[]]
        for token in lex:
            if token in ("&&", ";", "||"):
                out.append([])
            else:
                out[-1].append(token)
        return [c for c in out if c]


@dataclass
class Stage:
    name: str | None
    base: str  # the FROM image, build arguments substituted
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]

    def commands(self) -> list[list[str]]:
        """Every simple command its RUN instructions run, in order."""
        return [c for i in self.all("RUN") for c in i.commands()]

    def env(self, build_args: dict[str, str] | None = None) -> dict[str, str]:
        """The environment ENV sets in this stage (ARG values usable in it, ``build_args`` overriding their
        defaults); ``$PATH``-like references to the base image's variables stay as written."""
        known: dict[str, str] = {}
        env: dict[str, str] = {}
        for ins in self.instructions:
            if ins.cmd == "ARG":
                name, _, default = ins.args.partition("=")
                value = (build_args or {}).get(name, shlex.split(default)[0] if default.strip() else "")
                known[name] = value
            elif ins.cmd == "ENV":
                words = shlex.split(ins.args)
                pairs = [w.split("=", 1) for w in words] if "=" in words[0] else [[words[0], " ".join(words[1:])]]
                for key, value in pairs:
                    env[key] = substitute(value, {**known, **env})
        return env

    def arg_defaults(self) -> dict[str, str]:
        out = {}
        for ins in self.all("ARG"):
            name, _, default = ins.args.partition("=")
            out[name] = shlex.split(default)[0] if default.strip() else ""
        return out


def _logical_lines(text: str) -> Iterator[str]:
    """Instructions as Docker reads them: a line ending in a backslash continues on the next (the two
    joined without it), comment lines are dropped, inside a continued instruction too."""
    buf: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not buf and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            buf.append(line.rstrip()[:-1])
            continue
        buf.append(line)
        yield "".join(buf).strip()
        buf = []
    if buf:
        yield "".join(buf).strip()


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        flags = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        ins = Instruction(cmd.upper(), flags, rest)
        if ins.cmd == "FROM":
            words = substitute(rest, global_args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name, words[0]))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.cmd == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = shlex.split(default)[0] if default.strip() else ""
    return global_args, stages


def pip_installs(commands: list[list[str]]) -> list[tuple[list[str], dict[str, str]]]:
    """(requirements, options) of every ``pip install`` among ``commands``."""
    out = []
    for argv in commands:
        if argv[:2] != ["pip", "install"] and argv[1:3] != ["-m", "pip"]:
            continue
        words = argv[argv.index("install") + 1 :]
        reqs, opts = [], {}
        it = iter(words)
        for w in it:
            if w.startswith("--") and w not in ("--no-deps", "--upgrade", "-U"):
                opts[w] = next(it, "")
            elif not w.startswith("-"):
                reqs.append(w)
        out.append((reqs, opts))
    return out


# -- .dockerignore -----------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    """Docker's pattern syntax (Go's filepath.Match plus ``**``: any number of folders)."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                    out += "(.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def dockerignore(path: Path) -> Callable[[str], bool]:
    """``sent(relpath)``: whether Docker sends this path of the context, by the file's patterns in order (a
    later match wins; ``!`` re-includes; a pattern matching a parent folder matches what is inside)."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        p = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((exclude, _pattern_regex(p)))

    def sent(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for exclude, rx in rules:
            if any(rx.match(p) for p in prefixes):
                excluded = exclude
        return not excluded

    return sent


def checkout_files() -> list[str]:
    """The repository's files (tracked ones in a git checkout, else every file but .git's)."""
    try:
        r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    except OSError:  # no git
        r = None
    if r is not None and r.returncode == 0 and r.stdout:
        return [f for f in r.stdout.decode().split("\0") if f]
    return [
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.relative_to(ROOT).parts
    ]


# -- settings ----------------------------------------------------------------------------------------------


@contextmanager
def container_env(env: dict[str, str]) -> Iterator[None]:
    """os.environ holding ``env`` as its only TOKENSEARCH_* variables (restored afterwards)."""
    saved = dict(os.environ)
    try:
        for k in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[k]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def container_settings(env: dict[str, str]) -> Settings:
    """The settings a process started with ``env`` reads (only the TOKENSEARCH_* ones matter)."""
    with container_env(env):
        return Settings()


def settings_fields() -> set[str]:
    """Every TOKENSEARCH_* variable that is a setting (others are ignored silently, so a typo is lost)."""
    return {f"{ENV_PREFIX}{f.upper()}" for f in Settings.model_fields}
