"""NIR in: read a file, flatten nested subgraphs, validate, and order it for stepping.

`Graph` is spinnq's plain view of a validated NIR graph. The nodes stay `nir` nodes (NIR is
the hand-off type); what `Graph` adds is what every later stage needs and nir does not
guarantee: one flat namespace, the shape flowing along every edge, an evaluation order for
one timestep, and which edges carry the previous step's value (recurrence).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import multiprocessing
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np

from spinnq.errors import GraphError
from spinnq.files import atomic_path, check_input
from spinnq.graph.nodes import NEURONS, STATEFUL
from spinnq.limits import check_memory

Shape = tuple[int, ...]
MAX_ELEMENTS = 1 << 26  # largest tensor one node may produce (per sample); guards huge graphs


@dataclass
class Graph:
    """A validated NIR graph, flat and ordered.

    `order` evaluates every node once per step; an edge in `recurrent` delivers the value its
    source had at the previous step (it closes a cycle through a stateful node).
    """

    nodes: dict[str, nir.NIRNode]
    edges: list[tuple[str, str]]
    shapes: dict[str, Shape]  # output shape of each node, without batch or time
    input: str
    outputs: list[str]
    order: list[str]
    recurrent: set[tuple[str, str]] = field(default_factory=set)
    source: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> Shape:
        return self.shapes[self.input]

    def predecessors(self, name: str) -> list[str]:
        return [s for s, d in self.edges if d == name]

    def successors(self, name: str) -> list[str]:
        return [d for s, d in self.edges if s == name]

    def in_shape(self, name: str) -> Shape:
        preds = self.predecessors(name)
        return self.shapes[preds[0]] if preds else self.shapes[name]

    def to_nir(self) -> nir.NIRGraph:
        return nir.NIRGraph(nodes=dict(self.nodes), edges=list(self.edges),
                            metadata=dict(self.metadata), type_check=False)


# ----------------------------------------------------------------------------------- reading
def read_graph(path: str | Path) -> Graph:
    """Read and validate a `.nir` file; every failure is a `GraphError` naming the file."""
    p = check_input(path, "the graph", error=GraphError)  # a FIFO would block open()
    with open(p, "rb") as fh:
        magic = fh.read(8)
    if magic != b"\x89HDF\r\n\x1a\n":
        raise GraphError("not an HDF5 file (a .nir file is HDF5 written by nir.write)",
                         file=str(p))
    g = _read_guarded(p)
    if not isinstance(g, nir.NIRGraph):
        raise GraphError(f"holds a single {type(g).__name__} node, not a graph", file=str(p))
    return from_nir(g, source=str(p))


READ_TIMEOUT_S = 60.0  # far above any real file; a corrupted one can loop inside HDF5
READ_BYTES_PER_S = 10e6  # plus this much time per byte: nir's gzip chunks read at ~60-100 MB/s


READ_COPIES = 3  # nir.read's arrays, their bytes on the pipe, the parent's copy
# Declared bytes a file may hold beyond its own size: real weights compress < 10x (gzip);
# more than this is a dataset of fill values or zeros written to make readers allocate.
EXPANSION_FREE = 256 << 20
EXPANSION_RATIO = 1024


def check_datasets(path: str) -> None:
    """Every HDF5 dataset's size from its header (shape x item size), against the memory
    budget, before any data is read: a 52 KB file can declare a 2 GiB dataset that holds
    only its fill value, which `nir.read` would allocate in full. GraphError naming the
    node and the figure."""
    import h5py

    sizes: list[tuple[str, int]] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            shape = obj.shape or ()
            sizes.append((name, obj.dtype.itemsize * math.prod(shape)))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    if not sizes:
        return
    name, biggest = max(sizes, key=lambda t: t[1])
    parts = name.split("/")
    node = ".".join(parts[i + 1] for i, x in enumerate(parts[:-2]) if x == "nodes") or None
    total, on_disk = sum(n for _, n in sizes), os.path.getsize(path)
    if total > EXPANSION_FREE + EXPANSION_RATIO * on_disk:
        raise GraphError(f"its datasets declare {total:,} bytes (largest '{parts[-1]}': "
                         f"{biggest:,}) in a file of {on_disk:,} bytes: fill values or "
                         "zeros that would be allocated in full; refused before reading",
                         file=path, node=node)
    check_memory(sum(n for _, n in sizes) * READ_COPIES, f"reading the graph (largest "
                 f"dataset '{parts[-1]}': {biggest:,} bytes)", file=path, node=node,
                 error=GraphError)


def _read_child(path: str, conn) -> None:
    """Read the graph and send it: the pickle without its arrays, then each array's bytes
    (pickle protocol 5, out of band), so neither side ever holds a pickled copy of them."""
    try:
        check_datasets(path)
    except GraphError as e:
        conn.send((False, e, []))
        return
    except Exception:  # a header h5py cannot walk: nir.read below says what is wrong
        pass
    try:
        g = nir.read(path)
    except Exception as e:  # nir raises KeyError/ValueError/OSError/AssertionError freely
        conn.send((False, f"{type(e).__name__}: {e}", []))
        return
    bufs: list[pickle.PickleBuffer] = []
    meta = pickle.dumps(g, protocol=5, buffer_callback=bufs.append)
    raws = [b.raw() for b in bufs]
    conn.send((True, meta, [r.nbytes for r in raws]))
    for r in raws:  # raw bytes on the pipe (Connection.send_bytes would frame and buffer)
        mv = r.cast("B") if r.format != "B" else r
        while len(mv):
            mv = mv[os.write(conn.fileno(), mv):]


def _read_into(fd: int, buf: bytearray) -> None:
    """Fill `buf` from the pipe (raw bytes, see `_read_child`); EOFError if the child died."""
    mv = memoryview(buf)
    while len(mv):
        n = os.readv(fd, [mv])
        if n == 0:
            raise EOFError
        mv = mv[n:]


def _read_guarded(p: Path, timeout: float | None = None) -> nir.NIRNode:
    """`nir.read` in a forked child: a corrupted HDF5 heap can make the HDF5 C library loop
    forever or crash (found by fuzzing), which no signal or exception handler can stop in
    this process. Where fork is unavailable, reads in this process."""
    fail = "HDF5, but not a NIR graph nir 1.0.8 can read ({})"
    timeout = READ_TIMEOUT_S + p.stat().st_size / READ_BYTES_PER_S if timeout is None \
        else timeout
    if "fork" not in multiprocessing.get_all_start_methods():
        try:
            check_datasets(str(p))
        except GraphError:
            raise
        except Exception:  # nir.read below says what is wrong with the file
            pass
        try:
            return nir.read(str(p))
        except Exception as e:
            raise GraphError(fail.format(f"{type(e).__name__}: {e}"), file=str(p)) from None
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_read_child, args=(str(p), send), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout):
            raise GraphError(fail.format(f"reading did not finish in {timeout:.0f} s; the file "
                                         "is probably corrupted"), file=str(p))
        try:
            ok, payload, sizes = recv.recv()
            if ok:  # the arrays straight into their own (writable) buffers
                arrays = [bytearray(n) for n in sizes]
                for a in arrays:
                    _read_into(recv.fileno(), a)
                payload = pickle.loads(payload, buffers=arrays)
        except (EOFError, OSError):
            raise GraphError(fail.format("the HDF5 reader crashed; the file is probably "
                                         "corrupted"), file=str(p)) from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
    if not ok:
        if isinstance(payload, GraphError):  # the size check's own message
            raise payload
        raise GraphError(fail.format(payload), file=str(p))
    return payload


def write_graph(graph: Graph | nir.NIRGraph, path: str | Path) -> Path:
    """Write a graph as `.nir` (atomically: a half-written file never replaces a good one).

    Every 0-d array (a pool's kernel read back from a file, a scalar gain folded by a
    rewrite) is written as a scalar: `nir.write` gzips every array, and HDF5 refuses to
    compress a scalar dataset. The values and their broadcasting are unchanged."""
    g = graph.to_nir() if isinstance(graph, Graph) else graph
    p = Path(path)
    with atomic_path(p) as tmp:
        nir.write(str(tmp), _writable_node(g))
    return p


def _writable(value: object) -> object:
    """`value` with every 0-d array (also inside a metadata dict) as a numpy scalar."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    if isinstance(value, dict):
        return {k: _writable(v) for k, v in value.items()}
    return value


def _writable_node(node: nir.NIRNode) -> nir.NIRNode:
    """A shallow copy of `node` (recursively for subgraphs) that `nir.write` can store."""
    out = copy.copy(node)
    for f in dataclasses.fields(node):
        val = getattr(node, f.name)
        if f.name == "nodes" and isinstance(node, nir.NIRGraph):
            val = {k: _writable_node(v) for k, v in val.items()}
        setattr(out, f.name, _writable(val))
    return out


# ------------------------------------------------------------------------------- flattening
def _flatten(g: nir.NIRGraph, prefix: str = "") -> tuple[dict, list]:
    """Expand nested NIRGraph nodes into one namespace ("outer.inner"), rewiring their ports."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}  # subgraph name -> flat names fed by its Input nodes
    exit_: dict[str, list[str]] = {}  # subgraph name -> flat names feeding its Output nodes
    for name, node in g.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node, full + ".")
            ins = {full + "." + k for k, n in node.nodes.items() if isinstance(n, nir.Input)}
            outs = {full + "." + k for k, n in node.nodes.items() if isinstance(n, nir.Output)}
            entry[full] = [d for s, d in sub_edges if s in ins]
            exit_[full] = [s for s, d in sub_edges if d in outs]
            nodes.update({k: v for k, v in sub_nodes.items() if k not in ins | outs})
            edges += [(s, d) for s, d in sub_edges if s not in ins and d not in outs]
        else:
            nodes[full] = node
    for s, d in g.edges:
        s, d = _port(prefix + s, nodes), _port(prefix + d, nodes)
        for s2 in exit_.get(s, [s]):
            for d2 in entry.get(d, [d]):
                edges.append((s2, d2))
    return nodes, edges


def _port(name: str, nodes: dict) -> str:
    """Edges may name a subgraph's port as 'sub.input'/'sub.output'; map it to the subgraph."""
    if name in nodes or "." not in name:
        return name
    head, _, tail = name.rpartition(".")
    return head if tail in ("input", "output") else name


# ------------------------------------------------------------------------------ validation
def from_nir(g: nir.NIRGraph, source: str | None = None) -> Graph:
    """Validate a NIR graph and return spinnq's `Graph`, or raise `GraphError`."""
    nodes, edges = _flatten(g)
    if not nodes:
        raise GraphError("the graph is empty", file=source)
    edges = list(dict.fromkeys(edges))  # duplicates would double a weight silently
    for s, d in edges:
        for end in (s, d):
            if end not in nodes:
                raise GraphError(f"edge {s} -> {d} names a node that does not exist",
                                 file=source, node=end)
    for name, node in nodes.items():
        if type(node) not in SHAPE_RULES:
            raise GraphError(f"unsupported node type {type(node).__name__}; spinnq supports "
                             f"{', '.join(sorted(t.__name__ for t in SHAPE_RULES))}",
                             file=source, node=name)
        _check_params(name, node, source)
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1:
        raise GraphError(f"spinnq runs graphs with exactly one Input node; found "
                         f"{len(inputs)} ({', '.join(inputs) or 'none'})", file=source)
    if not outputs:
        raise GraphError("the graph has no Output node", file=source)
    for name in nodes:
        has_in = any(d == name for _, d in edges)
        if name != inputs[0] and not has_in:
            raise GraphError("node has no incoming edge (unreachable from the Input)",
                             file=source, node=name)
        if name == inputs[0] and has_in:
            raise GraphError("the Input node must not have incoming edges", file=source,
                             node=name)
    for o in outputs:
        if any(s == o for s, _ in edges):
            raise GraphError("an Output node must not have outgoing edges", file=source, node=o)
    order, recurrent = _order(nodes, edges, source)
    shapes = _infer_shapes(nodes, edges, order, inputs[0], source)
    _check_size(nodes, shapes, source)
    nodes = {n: _broadcast_params(n, v, shapes[n], source) for n, v in nodes.items()}
    return Graph(nodes=nodes, edges=edges, shapes=shapes, input=inputs[0], outputs=outputs,
                 order=order, recurrent=recurrent, source=source,
                 metadata=dict(getattr(g, "metadata", {}) or {}))


NEURON_BYTES = 160  # per neuron, to read, compile and export (measured ~120 B: 4M-neuron conv)


def _check_size(nodes: dict, shapes: dict, source: str | None) -> None:
    """The graph's neurons against the memory budget, before their parameters are
    broadcast to full arrays: a few scalars in a small file can declare 64M neurons."""
    neurons = {n: math.prod(shapes[n]) for n, v in nodes.items() if isinstance(v, STATEFUL)}
    if neurons:
        big = max(neurons, key=neurons.__getitem__)
        total = sum(neurons.values())
        check_memory(total * NEURON_BYTES, f"a graph of {total:,} neurons (largest node "
                     f"{neurons[big]:,})", file=source, node=big, error=GraphError)


# Parameters that must be real numbers (None allowed only for the optional ones).
NUMERIC = {"weight", "bias", "tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold",
           "v_reset", "w_in", "scale", "delay", "threshold", "kernel_size", "stride",
           "padding", "dilation", "groups", "start_dim", "end_dim"}
OPTIONAL = {"bias", "v_reset"}
NEURON_PARAMS = ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in")


def _check_params(name: str, node: nir.NIRNode, source: str | None) -> None:
    for attr, val in vars(node).items():
        if attr in ("input_type", "output_type", "metadata"):
            continue
        if attr in NUMERIC and not (val is None and attr in OPTIONAL) and not (
                attr == "padding" and isinstance(val, str) and val in ("same", "valid")):
            try:
                kind = np.asarray(val).dtype.kind
            except Exception:  # ragged sequences and other non-arrays
                kind = "O"
            if isinstance(val, str) or kind not in "fiub":
                raise GraphError(f"parameter '{attr}' must be real numbers, got "
                                 f"{type(val).__name__} {str(val)[:40]!r}", file=source,
                                 node=name)
        arr = np.asarray(val) if not isinstance(val, str) else None
        if arr is None or arr.dtype == object:
            continue
        if arr.dtype.kind in "fiub" and not np.all(np.isfinite(arr)):
            raise GraphError(f"parameter '{attr}' has NaN or infinite values", file=source,
                             node=name)
        if attr in ("tau", "tau_mem", "tau_syn") and np.any(arr <= 0):
            raise GraphError(f"time constant '{attr}' must be > 0 (min is {arr.min():g})",
                             file=source, node=name)
        if attr == "delay" and np.any(arr < 0):
            raise GraphError("delay must be >= 0", file=source, node=name)
    shapes = {a: np.shape(getattr(node, a)) for a in NEURON_PARAMS
              if getattr(node, a, None) is not None}
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise GraphError(f"neuron parameters disagree in shape: {shapes}", file=source,
                         node=name) from None


def _broadcast_params(name: str, node: nir.NIRNode, shape: Shape,
                      source: str | None) -> nir.NIRNode:
    """The node with every neuron parameter as an array of the node's shape (a copy where one
    was not): exporters write scalars (Norse's default cells, shared taus), and every later
    stage (compile, quantization, fine-tuning, nir.write) then sees one layout."""
    if not isinstance(node, NEURONS):
        return node
    todo = [a for a in NEURON_PARAMS if getattr(node, a, None) is not None
            and np.shape(getattr(node, a)) != shape]
    if not todo:
        return node
    out = copy.copy(node)
    for a in todo:
        val = np.asarray(getattr(node, a))
        try:
            setattr(out, a, np.broadcast_to(val, shape).copy())
        except ValueError:
            raise GraphError(f"parameter '{a}' of shape {val.shape} does not fit the node's "
                             f"shape {shape}", file=source, node=name) from None
    return out


def _order(nodes: dict, edges: list, source: str | None) -> tuple[list[str], set]:
    """Topological order for one step; cycles are cut at edges leaving a stateful node."""
    comp = _scc(list(nodes), edges)
    recurrent = {(s, d) for s, d in edges
                 if comp[s] == comp[d] and isinstance(nodes[s], STATEFUL)}
    fwd = [(s, d) for s, d in edges if (s, d) not in recurrent]
    indeg = {n: 0 for n in nodes}
    for _, d in fwd:
        indeg[d] += 1
    ready = [n for n in nodes if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s, d in fwd:
            if s == n:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
    if len(order) != len(nodes):
        cycle = _one_cycle([n for n in nodes if n not in order], fwd)
        raise GraphError("algebraic loop: a cycle with no neuron or delay on it: "
                         f"{' -> '.join([*cycle, cycle[0]])}", file=source, node=cycle[0])
    return order, recurrent


def _one_cycle(stuck: list[str], fwd: list) -> list[str]:
    """One cycle among the nodes a topological sort could not order, in edge order. Every
    such node has a predecessor among them, so walking predecessors must revisit a node."""
    left = set(stuck)
    pred = {d: s for s, d in fwd if s in left and d in left}
    path, seen = [stuck[0]], {stuck[0]: 0}
    while True:
        n = pred[path[-1]]
        if n in seen:
            return list(reversed(path[seen[n]:]))
        seen[n] = len(path)
        path.append(n)


def _scc(names: list[str], edges: list) -> dict[str, int]:
    """Strongly connected components (iterative Tarjan): node -> component id."""
    adj: dict[str, list[str]] = {n: [] for n in names}
    for s, d in edges:
        adj[s].append(d)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    counter = 0
    for root in names:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            if i < len(adj[v]):
                work.append((v, i + 1))
                w = adj[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp[w] = index[v]
                    if w == v:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return comp


# ---------------------------------------------------------------------------------- shapes
def _declared(types: dict | None, key: str) -> Shape | None:
    if not types or types.get(key) is None:
        return None
    arr = np.asarray(types[key]).astype(int).ravel()
    return tuple(int(x) for x in arr) if arr.size else None


def pair(v) -> tuple[int, int]:
    a = np.asarray(v).astype(int).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def conv_padding(node, in_hw: Shape) -> tuple[int, ...]:
    """Explicit per-dimension padding of a Conv1d/Conv2d node ('same'/'valid' resolved)."""
    k = node.weight.shape[2:]
    dil = np.broadcast_to(np.asarray(node.dilation).astype(int), (len(k),))
    if isinstance(node.padding, str):
        if node.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same', 'valid' or integers, got "
                             f"{node.padding!r}")
        if node.padding == "valid":
            return (0,) * len(k)
        return tuple(int(d * (kk - 1) // 2) for d, kk in zip(dil, k, strict=True))
    return tuple(int(p) for p in np.broadcast_to(np.asarray(node.padding).astype(int),
                                                  (len(k),)))


def _conv_shape(node, s: Shape) -> Shape:
    nd = 1 if isinstance(node, nir.Conv1d) else 2
    if np.ndim(node.weight) != nd + 2:
        raise ValueError(f"weight must be {nd + 2}-D (out, in, kernel), got shape "
                         f"{np.shape(node.weight)}")
    k = node.weight.shape[2:]
    if len(s) != nd + 1:
        raise ValueError(f"expects input (C, {'N' if nd == 1 else 'H, W'}), got {s}")
    groups = int(np.asarray(node.groups).ravel()[0]) if np.size(node.groups) == 1 else 0
    if groups < 1 or node.weight.shape[0] % groups:
        raise ValueError(f"groups must be a positive divisor of the {node.weight.shape[0]} "
                         f"output channels, got {node.groups}")
    cin = node.weight.shape[1] * groups
    if s[0] != cin:
        raise ValueError(f"expects {cin} input channels, got {s[0]}")
    stride = np.broadcast_to(np.asarray(node.stride).astype(int), (nd,))
    dil = np.broadcast_to(np.asarray(node.dilation).astype(int), (nd,))
    pad = conv_padding(node, s[1:])
    if min(stride) < 1 or min(dil) < 1 or min(pad) < 0 or min(k) < 1:
        raise ValueError(f"needs kernel, stride, dilation >= 1 and padding >= 0 (kernel {k}, "
                         f"stride {tuple(map(int, stride))}, dilation {tuple(map(int, dil))}, "
                         f"padding {pad})")
    out = [(s[1 + i] + 2 * pad[i] - dil[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    if min(out) < 1:
        raise ValueError(f"output would be empty for input {s}")
    return (int(node.weight.shape[0]), *map(int, out))


def _pool_shape(node, s: Shape) -> Shape:
    if len(s) != 3:
        raise ValueError(f"expects input (C, H, W), got {s}")
    k, st, p = pair(node.kernel_size), pair(node.stride), pair(node.padding)
    if min(k) < 1 or min(st) < 1 or min(p) < 0:
        raise ValueError(f"needs kernel and stride >= 1 and padding >= 0 (kernel {k}, "
                         f"stride {st}, padding {p})")
    out = [(s[1 + i] + 2 * p[i] - k[i]) // st[i] + 1 for i in range(2)]
    if min(out) < 1:
        raise ValueError(f"output would be empty for input {s}")
    return (s[0], *out)


def _flatten_shape(node, s: Shape) -> Shape:
    n = len(s)
    for d in (node.start_dim, node.end_dim):  # n + 1: a writer may count a batch axis
        if not -(n + 1) <= int(d) <= n:
            raise ValueError(f"start_dim {node.start_dim} / end_dim {node.end_dim} out of "
                             f"range for an input of shape {s}")
    a = int(node.start_dim) % n if n else 0
    b = int(node.end_dim) % n if n else 0
    # NIR writers disagree whether start_dim counts a batch axis: snnTorch/nirtorch write
    # start_dim=1 for (C,H,W) meaning "all but batch"; Sinabs writes 0. Both flatten all.
    if a == 1 and b == n - 1 and _declared(node.output_type, "output") == (math.prod(s),):
        a = 0
    return (*s[:a], math.prod(s[a:b + 1]), *s[b + 1:])


def _same(shape_attr: str) -> Callable:
    def rule(node, s: Shape) -> Shape:
        p = np.shape(getattr(node, shape_attr))
        if p and tuple(p) != tuple(s):
            raise ValueError(f"parameters have shape {tuple(p)} but the input is {s}")
        return s
    return rule


def _linear_shape(node, s: Shape) -> Shape:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ValueError(f"weight must be 2-D, got shape {w.shape}")
    if s != (w.shape[1],):
        raise ValueError(f"weight {w.shape} expects input ({w.shape[1]},), got {s}")
    if getattr(node, "bias", None) is not None and np.shape(node.bias) not in ((w.shape[0],), ()):
        raise ValueError(f"bias shape {np.shape(node.bias)} does not match {w.shape[0]} outputs")
    return (int(w.shape[0]),)


SHAPE_RULES: dict[type, Callable[[nir.NIRNode, Shape], Shape]] = {
    nir.Input: lambda n, s: s,
    nir.Output: lambda n, s: s,
    nir.Affine: _linear_shape,
    nir.Linear: _linear_shape,
    nir.Scale: _same("scale"),
    nir.Conv1d: _conv_shape,
    nir.Conv2d: _conv_shape,
    nir.Flatten: _flatten_shape,
    nir.SumPool2d: _pool_shape,
    nir.AvgPool2d: _pool_shape,
    nir.Delay: _same("delay"),
    nir.Threshold: _same("threshold"),
    nir.I: _same("r"),
    nir.IF: _same("r"),
    nir.LI: _same("r"),
    nir.LIF: _same("r"),
    nir.CubaLI: _same("r"),
    nir.CubaLIF: _same("r"),
}


def _infer_shapes(nodes: dict, edges: list, order: list, inp: str, source) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    s0 = _declared(nodes[inp].input_type, "input") or _declared(nodes[inp].output_type, "output")
    if s0 is None or any(x < 1 for x in s0):
        raise GraphError(f"the Input node declares no valid shape ({s0})", file=source, node=inp)
    if math.prod(s0) > MAX_ELEMENTS:  # every later stage allocates per input element
        raise GraphError(f"input shape {s0} has {math.prod(s0):,} elements, over the limit "
                         f"of {MAX_ELEMENTS:,}", file=source, node=inp)
    shapes[inp] = s0
    for name in order:
        if name == inp:
            continue
        node = nodes[name]
        in_shapes = {shapes[s] for s, d in edges if d == name and s in shapes}
        if not in_shapes:  # fed only by recurrent edges: its own declared shape must do
            decl = _declared(node.input_type, "input")
            if decl is None:
                raise GraphError("cannot infer the input shape", file=source, node=name)
            in_shapes = {decl}
        if len(in_shapes) > 1:
            raise GraphError(f"incoming edges carry different shapes {sorted(in_shapes)}",
                             file=source, node=name)
        (s,) = in_shapes
        try:
            out = SHAPE_RULES[type(node)](node, s)
        except ValueError as e:
            raise GraphError(f"{type(node).__name__} {e}", file=source, node=name) from None
        if math.prod(out) > MAX_ELEMENTS:
            raise GraphError(f"output has {math.prod(out):,} elements, over the limit of "
                             f"{MAX_ELEMENTS:,}", file=source, node=name)
        shapes[name] = out
    for name in order:  # recurrent edges were not seen above: every input must agree
        ins = {shapes[s] for s, d in edges if d == name}
        if len(ins) > 1:
            raise GraphError(f"incoming edges carry different shapes {sorted(ins)}",
                             file=source, node=name)
    return shapes
