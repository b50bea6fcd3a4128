"""The pipeline graph and the sparklines, laid out from the models alone (templates only draw them).

Nodes are stages, coloured by state (`Stage.state`, or `failing` for a running stage
whose error rate is high, as `pipelinectl status` shows it); edges are the channels
into each stage, labelled with its queue depth/capacity. The shape:

- `chain`: input -> first stage -> ... -> last stage. The project's own API (driver
  `http`) lists a pipeline's stages in flow order, each feeding the next.
- `fan-out`: input -> every stage. An engine's stages are consumers of one input
  (NATS consumers of a stream, Temporal task queues of a namespace).

A driver can say which with `Pipeline.details["graph"]` ("chain" or "fan-out").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelinectl.output import clip_text

if TYPE_CHECKING:
    from pipelinectl.model import Pipeline, Stage

NODE_W, NODE_H = 156, 66
GAP_X, GAP_Y = 70, 44
PER_ROW = 6  # nodes per row of a chain; longer chains snake onto the next row
PAD = 12
FULL_AT = 0.8  # a queue this full (of its capacity) stands out


def health(stage: Stage) -> str:
    """The state a stage is drawn in: the CLI's STATE column (pipelinectl status)."""
    from pipelinectl.cli.status import health as status_health

    return status_health(stage)


def queue_text(stage: Stage) -> str:
    return str(stage.queue_depth) if stage.queue_capacity is None else f"{stage.queue_depth}/{stage.queue_capacity}"


def queue_level(stage: Stage) -> str:
    """'ok', 'busy' (at least FULL_AT of capacity) or 'full'."""
    if not stage.queue_capacity:
        return "ok"
    if stage.queue_depth >= stage.queue_capacity:
        return "full"
    return "busy" if stage.queue_depth >= FULL_AT * stage.queue_capacity else "ok"


@dataclass
class Node:
    x: int
    y: int
    name: str  # full name (the tooltip)
    label: str  # clipped to fit
    state: str  # css class suffix: running, paused, draining, disabled, failing, input, or other
    lines: list[str] = field(default_factory=list)
    stage: str | None = None  # None for the input node
    w: int = NODE_W
    h: int = NODE_H


@dataclass
class Edge:
    path: str  # SVG path data
    label: str
    lx: int  # label position
    ly: int
    level: str  # ok | busy | full
    title: str


@dataclass
class Graph:
    shape: str
    width: int
    height: int
    nodes: list[Node]
    edges: list[Edge]


KNOWN_STATES = ("running", "paused", "draining", "disabled", "failing")


def shape_of(pipeline: Pipeline) -> str:
    declared = (pipeline.details or {}).get("graph")
    if declared in ("chain", "fan-out"):
        return declared
    return "chain" if pipeline.driver == "http" else "fan-out"


def _stage_node(stage: Stage, x: int, y: int) -> Node:
    state = health(stage)
    shown = state if state in KNOWN_STATES else "other"
    return Node(x=x, y=y, name=stage.name, label=clip_text(stage.name, 18), state=shown, stage=stage.name,
                lines=[f"{clip_text(state, 10)} · ×{stage.parallelism}", f"in flight {stage.in_flight}"])


def _input_node(pipeline: Pipeline, x: int, y: int) -> Node:
    lines = ["input"]
    if pipeline.input_offset is not None:
        lines = [f"offset {pipeline.input_offset}"]
    return Node(x=x, y=y, name=pipeline.name, label=clip_text(pipeline.name, 18), state="input", lines=lines)


def _edge(a: Node, b: Node, stage: Stage) -> Edge:
    """An arrow from a's side to b's facing side, labelled with b's queue."""
    if a.y == b.y:  # same row: left-to-right or right-to-left
        if a.x < b.x:
            x1, x2 = a.x + a.w, b.x
        else:
            x1, x2 = a.x, b.x + b.w
        y1 = y2 = a.y + a.h // 2
        path = f"M{x1},{y1} L{x2},{y2}"
        lx, ly = (x1 + x2) // 2, y1 - 8
    elif a.x + a.w <= b.x:  # fan-out: from the input node to a stage further right
        x1, y1 = a.x + a.w, a.y + a.h // 2
        x2, y2 = b.x, b.y + b.h // 2
        mid = (x1 + x2) // 2
        path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        lx, ly = x2 - 34, y2 - 8
    else:  # next row of a snaking chain: straight down
        x1 = x2 = a.x + a.w // 2
        y1, y2 = a.y + a.h, b.y
        path = f"M{x1},{y1} L{x2},{y2}"
        lx, ly = x1 + 34, (y1 + y2) // 2 + 4
    text = queue_text(stage)
    return Edge(path=path, label=text, lx=lx, ly=ly, level=queue_level(stage),
                title=f"queue into {stage.name}: {text}")


def layout(pipeline: Pipeline) -> Graph:
    shape = shape_of(pipeline)
    stages = list(pipeline.stages)
    nodes: list[Node] = []
    edges: list[Edge] = []
    if shape == "chain":
        count = len(stages) + 1
        for i in range(count):
            row, col = divmod(i, PER_ROW)
            if row % 2:
                col = PER_ROW - 1 - col  # snake back on odd rows
            x, y = PAD + col * (NODE_W + GAP_X), PAD + 16 + row * (NODE_H + GAP_Y)
            nodes.append(_input_node(pipeline, x, y) if i == 0 else _stage_node(stages[i - 1], x, y))
        for i, stage in enumerate(stages):
            edges.append(_edge(nodes[i], nodes[i + 1], stage))
    else:
        rows = max(1, len(stages))
        source_y = PAD + 16 + (rows - 1) * (NODE_H + 18) // 2
        source = _input_node(pipeline, PAD, source_y)
        nodes.append(source)
        for i, stage in enumerate(stages):
            node = _stage_node(stage, PAD + NODE_W + GAP_X * 3, PAD + 16 + i * (NODE_H + 18))
            nodes.append(node)
            edges.append(_edge(source, node, stage))
    width = max(n.x + n.w for n in nodes) + PAD
    height = max(n.y + n.h for n in nodes) + PAD
    return Graph(shape=shape, width=width, height=height, nodes=nodes, edges=edges)


# -- sparklines -----------------------------------------------------------------------------------------
SPARK_W, SPARK_H = 84, 20


def sparkline(values: list[float]) -> str:
    """SVG polyline points for the values, oldest first, evenly spaced ('' when fewer than two)."""
    if len(values) < 2:
        return ""
    top = max(values)
    low = min(0.0, min(values))
    scale = (top - low) or 1.0
    step = SPARK_W / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{SPARK_H - 2 - (SPARK_H - 4) * (v - low) / scale:.1f}"
                    for i, v in enumerate(values))


def sparklines(history: list[tuple[float, dict[str, float]]], metrics: tuple[str, ...]) -> dict[str, str]:
    """One sparkline per metric from a stage's (age, values) history."""
    return {m: sparkline([values[m] for _, values in history]) for m in metrics}


def rate(value: float) -> str:
    return f"{value:.1f}/s" if value < 100 else f"{value:,.0f}/s"


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def stage_row(stage: Stage) -> dict[str, Any]:
    """The metrics table's cells for one stage, as text."""
    return {
        "throughput": rate(stage.throughput),
        "error_rate": percent(stage.error_rate),
        "queue_depth": queue_text(stage),
        "in_flight": str(stage.in_flight),
        "parallelism": f"{stage.parallelism} ({stage.min_parallelism}-{stage.max_parallelism})",
        "processed": str(stage.processed),
        "dlq_size": str(stage.dlq_size),
    }
