"""Assign CPU cores to a CELL: a pure function over a plain description of the machine."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import PlacementError


@dataclass(frozen=True)
class Cpu:
    """One logical CPU: its id, physical core, package and NUMA node."""

    id: int
    core: int
    package: int = 0
    node: int = 0


@dataclass(frozen=True)
class Assignment:
    """The cores a CELL gets."""

    cpus: tuple[int, ...]
    mems: tuple[int, ...] | None  # NUMA nodes, only on machines with more than one
    host_core_reserved: bool
    note: str | None = None

    @property
    def cpuset_cpus(self) -> str:
        return format_cpulist(self.cpus)

    @property
    def cpuset_mems(self) -> str | None:
        return format_cpulist(self.mems) if self.mems else None


def parse_cpulist(text: str) -> tuple[int, ...]:
    """'0-2,5' -> (0, 1, 2, 5)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-")
            cpus.update(range(int(low), int(high) + 1))
        else:
            cpus.add(int(part))
    return tuple(sorted(cpus))


def format_cpulist(cpus) -> str:
    """(0, 1, 2, 5) -> '0-2,5'."""
    cpus = sorted(cpus)
    ranges, start = [], None
    for i, cpu in enumerate(cpus):
        if start is None:
            start = cpu
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            ranges.append(str(start) if start == cpu else f"{start}-{cpu}")
            start = None
    return ",".join(ranges)


def assign(threads: int, cpus: tuple[Cpu, ...], policy: str = "reserve-one", allowed: str | None = None) -> Assignment:
    """Pick logical CPUs for a CELL that runs ``threads`` threads.

    One logical CPU per thread, one per physical core first (SMT siblings only when
    there are not enough cores), packed into as few NUMA nodes as possible. With the
    ``reserve-one`` policy the physical core of the lowest CPU is left for the
    orchestrator and the OS unless the CELL needs every core, which the note says.
    """
    pool = [c for c in cpus if allowed is None or c.id in parse_cpulist(allowed)]
    if not pool:
        raise PlacementError(f"no CPU is available to run cells (allowed: {allowed or 'all'})")
    if threads > len(pool):
        raise PlacementError(
            f"the cell asks for {threads} threads but only {len(pool)} logical CPU(s) can be given to cells "
            f"({format_cpulist(c.id for c in pool)}); lower the thread count in the MATRIX")
    cores = sorted({(c.package, c.core) for c in pool})
    reserved: tuple[int, int] | None = None
    note = None
    if policy == "reserve-one":
        first = min(pool, key=lambda c: c.id)
        spare = [c for c in pool if (c.package, c.core) != (first.package, first.core)]
        if threads <= len(spare):
            reserved = (first.package, first.core)
            pool = spare
        else:
            note = (f"could not keep a core free for the host: the cell needs {threads} of "
                    f"{len(pool)} logical CPUs")
    chosen = _pick(threads, pool)
    if len({(c.package, c.core) for c in chosen}) < threads:
        smt = "the cell runs on SMT siblings: more threads than free physical cores"
        note = f"{note}; {smt}" if note else smt
    nodes = sorted({c.node for c in chosen})
    multi_node = len({c.node for c in cpus}) > 1
    return Assignment(tuple(sorted(c.id for c in chosen)), tuple(nodes) if multi_node else None,
                      reserved is not None and len(cores) > 1, note)


def _pick(threads: int, pool: list[Cpu]) -> list[Cpu]:
    """First one CPU per physical core, node by node (fullest node first), then siblings."""
    by_node: dict[int, list[Cpu]] = {}
    for cpu in sorted(pool, key=lambda c: c.id):
        by_node.setdefault(cpu.node, []).append(cpu)
    # The lowest-numbered node that holds the whole cell on physical cores; else fullest nodes first.
    order = sorted(by_node, key=lambda n: (-len({c.core for c in by_node[n]}), n))
    fits = [n for n in sorted(by_node) if len({(c.package, c.core) for c in by_node[n]}) >= threads]
    if fits:
        order = [fits[0]] + [n for n in order if n != fits[0]]
    firsts: list[Cpu] = []
    siblings: list[Cpu] = []
    seen: set[tuple[int, int]] = set()
    for node in order:
        for cpu in by_node[node]:
            key = (cpu.package, cpu.core)
            (siblings if key in seen else firsts).append(cpu)
            seen.add(key)
    return (firsts + siblings)[:threads]


def place(cells, matrix, topology: tuple[Cpu, ...]) -> dict[str, Assignment]:
    """Cores for every CELL of a PLAN (``matrix.placement`` says how), decided before anything runs so a bad
    thread count fails early. Moved here from run.py so that `orchestrate validate` need not load Docker.
    """
    if matrix.placement.cpus:  # a CPU the host lacks is refused, not silently dropped
        absent = sorted(set(parse_cpulist(matrix.placement.cpus)) - {c.id for c in topology})
        if absent:
            raise PlacementError(f"placement.cpus {matrix.placement.cpus!r} names CPU(s) "
                                 f"{format_cpulist(absent)} that this host does not offer (usable: "
                                 f"{format_cpulist(c.id for c in topology)})")
    placements = {}
    for cell in cells:
        try:
            placements[cell.cell_id] = assign(cell.threads, topology, matrix.placement.policy, matrix.placement.cpus)
        except PlacementError as exc:
            raise PlacementError(f"cell {cell.cell_id} ({cell.label()}): {exc}") from None
    return placements
