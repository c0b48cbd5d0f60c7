"""The one module that talks to the Docker engine (through the Docker SDK for Python).

Everything else passes plain data in and gets plain data back; ``docker.errors`` are
translated here into the project's own errors.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from orchestrator.errors import DockerError, ImageBuildError

LABEL = "orchestrate"  # every container the orchestrator starts carries this label
# A restarting engine refuses connections for a few seconds: up to 6 tries over about 11 s.
RETRY_ATTEMPTS = 6
RETRY_MAX_WAIT_S = 4.0
# What a dropped or refused connection to the engine looks like from the SDK.
LOST = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.ProtocolError, ConnectionError)


def transient(exc: BaseException) -> bool:
    """Whether an error from the Docker engine is worth another try (engine unreachable or restarting)."""
    if isinstance(exc, LOST) or isinstance(exc.__cause__, LOST):  # from_env wraps a refused first connection
        return True
    response = getattr(exc, "response", None)
    return isinstance(exc, docker.errors.APIError) and getattr(response, "status_code", None) in (502, 503, 504)


def retrying(attempts: int | None = None) -> Retrying:
    """The bounded retry policy for transient engine errors (re-raises the last error)."""
    return Retrying(retry=retry_if_exception(transient), stop=stop_after_attempt(attempts or RETRY_ATTEMPTS),
                    wait=wait_exponential(multiplier=0.5, max=RETRY_MAX_WAIT_S), reraise=True)


@dataclass(frozen=True)
class Mount:
    host: str
    container: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to start one CELL's container."""

    image: str
    name: str
    labels: dict
    mounts: tuple[Mount, ...]
    environment: dict
    cpuset_cpus: str
    cpuset_mems: str | None
    mem_limit: int
    user: str
    cgroup_parent: str | None
    pids_limit: int = 512
    command: tuple[str, ...] | None = None
    entrypoint: str | None = None
    network: str = "none"
    read_only: bool = True
    tmpfs_size: str = "256m"


@dataclass(frozen=True)
class Exit:
    """How a container ended, as the Docker engine reports it."""

    exit_code: int | None
    oom_killed: bool
    timed_out: bool
    started_at: str | None
    finished_at: str | None
    log: str


class Docker:
    """A connection to the Docker engine."""

    def __init__(self, timeout: int = 3600, client=None):
        """Connect, in three quick tries (no engine at all is reported in seconds); tests pass a fake ``client``."""

        def connect():
            connected = client or docker.from_env(timeout=timeout)
            connected.ping()
            return connected

        try:
            self.client = retrying(attempts=3)(connect)
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"cannot reach the Docker engine: {exc}. Is the daemon running "
                              "(`docker info`), and may this user use its socket?") from None

    def info(self) -> dict:
        """Engine facts for provenance and for reading cgroups."""
        info = self._call(self.client.info)
        version = self._call(self.client.version)
        return {
            "version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "os": info.get("OperatingSystem"),
            "kernel": info.get("KernelVersion"),
            "cgroup_driver": info.get("CgroupDriver"),
            "cgroup_version": str(info.get("CgroupVersion", "1")),
            "storage_driver": info.get("Driver"),
            "architecture": info.get("Architecture"),
        }

    # -- images ---------------------------------------------------------------------------

    def image_id(self, ref: str) -> str | None:
        try:
            return self._retry(self.client.images.get, ref).id
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            raise DockerError(f"cannot inspect image {ref}: {exc.explanation}") from None
        except LOST as exc:
            raise DockerError(f"cannot inspect image {ref}: lost the Docker engine: {exc}") from None

    def image_architecture(self, ref: str) -> str | None:
        """The architecture an image was built for (Docker's name: amd64, arm64), None when unknown."""
        try:
            return self._retry(self.client.images.get, ref).attrs.get("Architecture")
        except (docker.errors.DockerException, *LOST):
            return None

    def image_labels(self, ref: str) -> dict:
        try:
            return self._retry(self.client.images.get, ref).labels or {}
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"cannot inspect image {ref}: {exc}") from None

    def pull(self, ref: str, platform: str | None = None) -> bool:
        """Try to pull ``ref`` (for ``platform``); False when no registry can give it (offline machines)."""
        try:
            self.client.images.pull(ref, platform=platform)
            return True
        except docker.errors.DockerException:
            return False

    def import_rootfs(self, tar_path: Path, repository: str, tag: str, platform: str | None = None) -> str:
        """Make an image from a root filesystem tarball (like `docker import`, with `--platform` when given)."""
        try:
            if platform is None:
                self.client.api.import_image_from_file(str(tar_path), repository=repository, tag=tag)
            else:  # docker-py's import has no platform argument; the engine's API takes it (1.32+)
                api = self.client.api
                with tar_path.open("rb") as data:
                    response = api._post(api._url("/images/create"), data=data, headers={
                        "Content-Type": "application/tar"}, params={
                        "fromSrc": "-", "repo": repository, "tag": tag, "platform": platform}, timeout=None)
                api._raise_for_status(response)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(f"importing {tar_path} as {repository}:{tag} failed: {exc}") from None
        image = self.image_id(f"{repository}:{tag}")
        if image is None:
            raise DockerError(f"importing {tar_path} gave no image {repository}:{tag}")
        return image

    def build(self, context: bytes, tag: str, buildargs: dict, labels: dict, log_path: Path,
              on_line: Callable[[str], None] | None = None, platform: str | None = None) -> str:
        """Build an image from a tar build context; stream the log to ``log_path``; return its id."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tail: list[str] = []
        image_id = None
        stream = (chunk for chunk in ())  # closable before the build has started
        with log_path.open("w", encoding="utf-8", errors="replace") as log:
            try:
                stream = self.client.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag,
                                               buildargs=buildargs, labels=labels, rm=True, forcerm=True,
                                               pull=False, decode=True, platform=platform)
                for chunk in stream:
                    text = chunk.get("stream") or chunk.get("status") or ""
                    if "error" in chunk:
                        log.write(chunk["error"] + "\n")
                        tail.append(chunk["error"])
                        raise ImageBuildError(tag, chunk["error"].strip().splitlines()[-1] if chunk["error"].strip()
                                              else "error", "\n".join(tail[-30:]), str(log_path))
                    if "aux" in chunk and "ID" in chunk["aux"]:
                        image_id = (chunk.get("aux") or {}).get("ID")
                    if text:
                        log.write(text)
                        log.flush()
                        for line in text.splitlines():
                            if line.strip():
                                tail.append(line)
                                if on_line:
                                    on_line(line)
                        del tail[:-60]
            except docker.errors.DockerException as exc:
                raise ImageBuildError(tag, str(exc), "\n".join(tail[-30:]), str(log_path)) from None
            except (requests.exceptions.RequestException, *LOST) as exc:
                raise ImageBuildError(tag, f"lost the Docker engine while building: {exc}", "\n".join(tail[-30:]),
                                      str(log_path)) from None
            except KeyboardInterrupt:
                # Closing the stream drops the connection, and the engine then cancels the build
                # and removes its intermediate container (forcerm).
                self._quiet(stream.close)
                self._quiet(self.client.api.close)
                raise
        return image_id or self.image_id(tag) or ""

    # -- containers -----------------------------------------------------------------------

    def run(self, spec: ContainerSpec, timeout_s: float, on_line: Callable[[str], None] | None = None) -> Exit:
        """Start a container, block (no polling) until it exits or times out, remove it.

        With ``on_line``, the container's output is passed on line by line while it runs
        (a blocking stream, no polling either); a timer kills it at the timeout. A lost
        connection to the engine is retried (bounded); the container is waited for again.
        """
        volumes = {m.host: {"bind": m.container, "mode": "ro" if m.read_only else "rw"} for m in spec.mounts}
        kwargs = dict(
            image=spec.image, name=spec.name, command=list(spec.command) if spec.command else None,
            labels={LABEL: "1", **spec.labels}, environment=spec.environment, volumes=volumes,
            user=spec.user, read_only=spec.read_only, tmpfs={"/tmp": f"rw,size={spec.tmpfs_size}"},
            network_mode=spec.network, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            pids_limit=spec.pids_limit, detach=True,
        )
        if spec.mem_limit:
            kwargs.update(mem_limit=spec.mem_limit, memswap_limit=spec.mem_limit)
        if spec.cpuset_cpus:
            kwargs["cpuset_cpus"] = spec.cpuset_cpus
        if spec.entrypoint:
            kwargs["entrypoint"] = [spec.entrypoint]
        if spec.cpuset_mems:
            kwargs["cpuset_mems"] = spec.cpuset_mems
        if spec.cgroup_parent:
            kwargs["cgroup_parent"] = spec.cgroup_parent
        try:
            container = self._create(spec.name, kwargs)
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"cannot create container {spec.name} from {spec.image}: {exc}") from None
        lost: list[str] = []
        try:
            self._retry(container.start)
            if on_line:
                watchdog = threading.Timer(timeout_s, lambda: self._quiet(container.kill))
                watchdog.start()
                try:
                    try:
                        for line in _lines(container.logs(stream=True, follow=True)):
                            on_line(line)
                    except LOST as exc:  # the engine went away: wait on without the lines
                        lost.append(str(exc))
                    self._wait(container, spec.name, timeout_s + 60, lost)
                finally:
                    timed_out = not watchdog.is_alive()
                    watchdog.cancel()
            else:
                timed_out = self._wait(container, spec.name, timeout_s, lost)
            self._retry(container.reload)
            state = container.attrs["State"]
            log = self._retry(container.logs, stdout=True, stderr=True, tail=200).decode("utf-8", "replace")
            if lost:
                log += (f"\norchestrate: the connection to the Docker engine was lost {len(lost)} time(s) while "
                        f"the cell ran ({lost[-1]}); reconnected")
            return Exit(exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")),
                        timed_out=timed_out, started_at=state.get("StartedAt"), finished_at=state.get("FinishedAt"),
                        log=log)
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"container {spec.name} failed to run: {exc}") from None
        finally:
            self._quiet(self._retry, container.remove, force=True)

    def _create(self, name: str, kwargs: dict):
        tries = []

        def create():
            if tries:  # the request that was lost may have created it
                self._quiet(lambda: self.client.containers.get(name).remove(force=True))
            tries.append(name)
            return self.client.containers.create(**kwargs)

        return retrying()(create)

    def _wait(self, container, name: str, timeout_s: float, lost: list[str]) -> bool:
        """Block until the container exits; True when it ran past ``timeout_s`` and was killed.

        A connection lost while waiting (engine restarted, socket gone) is retried up to
        RETRY_ATTEMPTS times in a row, with the time that is left.
        """
        deadline = time.monotonic() + timeout_s
        failures = 0
        while True:
            remaining = deadline - time.monotonic()
            asked = time.monotonic()
            try:
                if remaining <= 0:
                    raise requests.exceptions.ReadTimeout("no time left")
                container.wait(timeout=remaining)
                return False
            except requests.exceptions.ReadTimeout:
                break
            except LOST as exc:
                # Over a Unix socket the SDK reports its own read timeout as a ConnectionError.
                if time.monotonic() >= deadline - 0.5 or "timed out" in str(exc):
                    break
                failures = failures + 1 if time.monotonic() - asked < 5 else 1
                lost.append(str(exc))
                if failures >= RETRY_ATTEMPTS:
                    raise DockerError(f"lost the Docker engine while container {name} ran and could not reconnect "
                                      f"({failures} tries): {exc}") from None
                time.sleep(min(RETRY_MAX_WAIT_S, 0.5 * 2 ** (failures - 1)))
        self._quiet(self._retry, container.kill)
        self._quiet(container.wait, timeout=30)
        return True

    def _labelled(self, labels: dict[str, str] | None) -> list:
        filters = [LABEL] + [f"{k}={v}" for k, v in (labels or {}).items()]
        try:
            return self._retry(self.client.containers.list, all=True, filters={"label": filters})
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"cannot list containers: {exc}") from None

    def list_labelled(self, labels: dict[str, str] | None = None) -> list[str]:
        """Names of the orchestrator's containers (optionally only those with these labels), running or not."""
        return [c.name for c in self._labelled(labels)]

    def remove_labelled(self, labels: dict[str, str] | None = None) -> list[str]:
        """Force-remove every orchestrator container (optionally only those with these labels)."""
        removed = []
        for container in self._labelled(labels):
            self._quiet(self._retry, container.remove, force=True)
            removed.append(container.name)
        return removed

    def remove_images(self, repository_prefix: str) -> list[str]:
        """Remove images whose repository starts with the prefix (used by `orchestrate clean --images`)."""
        removed = []
        for image in self.client.images.list():
            for tag in image.tags:
                if tag.startswith(repository_prefix):
                    self._quiet(self.client.images.remove, tag)
                    removed.append(tag)
        return removed

    def tag(self, image: str, ref: str) -> None:
        """Give an image (id or reference) another reference ``repository:tag``."""
        repository, _, tag = ref.rpartition(":")
        try:
            self._retry(self.client.images.get, image).tag(repository, tag)
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"cannot tag image {image} as {ref}: {exc}") from None

    def save(self, ref: str, path: Path) -> None:
        """Write an image as a `docker save` archive (streamed) to ``path``."""
        try:
            with path.open("wb") as out:
                for chunk in self._retry(self.client.images.get, ref).save(named=True):
                    out.write(chunk)
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"cannot save image {ref}: {exc}") from None

    def load(self, path: Path) -> list[str]:
        """Load a `docker save` archive; return the references it brought."""
        try:
            with path.open("rb") as archive:
                loaded = self.client.images.load(archive)
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"cannot load the image archive {path}: {exc}") from None
        return [tag for image in loaded for tag in image.tags]

    def run_tool(self, image: str, command: list[str], mounts: tuple[Mount, ...], user: str, name: str,
                 labels: dict, timeout_s: float = 6 * 3600, on_line: Callable[[str], None] | None = None) -> Exit:
        """Run a one-off tool container (model making, quantizing) with no network."""
        spec = ContainerSpec(image=image, name=name, labels=labels, mounts=mounts, environment={},
                             cpuset_cpus="", cpuset_mems=None, mem_limit=0, user=user, cgroup_parent=None,
                             command=tuple(command[1:]), entrypoint=command[0], tmpfs_size="2g", pids_limit=4096)
        return self.run(spec, timeout_s, on_line)

    @staticmethod
    def _quiet(function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (docker.errors.DockerException, requests.exceptions.RequestException, *LOST):
            return None

    @staticmethod
    def _retry(function, *args, **kwargs):
        """Call ``function``, retrying transient engine errors with the bounded policy."""
        return retrying()(function, *args, **kwargs)

    def _call(self, function, *args, **kwargs):
        try:
            return self._retry(function, *args, **kwargs)
        except (docker.errors.DockerException, *LOST) as exc:
            raise DockerError(f"Docker engine error: {exc}") from None


def _lines(chunks):
    """Whole text lines from a stream of byte chunks (lines may be split across chunks)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            text = line.decode("utf-8", "replace").rstrip("\r")
            if text.strip():
                yield text
    if pending.strip():
        yield pending.decode("utf-8", "replace")
