"""`radlabel replay`: re-label a window of the input topic with a chosen labeler, into another output topic or, as
a dry run, into a folder of files.

It is `run` on a window: :class:`Replay` is :class:`~connector.stream.app.StreamApp` (the same act: parse, scope,
label, fallback, dead letters, Bundles) on the shared consume loop with a manual assignment that ends at the
window's end offsets. What differs is only where the results go and two extra headers:

- ``replay-of``: the source window (``topic:partition=start-end,...``);
- ``replay-labeler``: the labeler the replay was asked to use, ``name@version#model`` (each record's own
  ``labeler``/``labeler-version``/``model`` headers still say who labeled it: the rules when the fallback stood in).

It commits to its own consumer group without joining it (manual assignment), so the live connector's group, its
offsets and its partitions are never touched. Stopping and running the same command again continues from that
group's committed offsets (at least once: a batch produced but not committed is produced again, identically).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from mappings.labels import Labeler, LabelerInfo

from connector.dead_letter_files import DeadLetterFolder
from connector.settings import Settings
from connector.stream.app import StreamApp
from connector.stream.metrics import Metrics
from connector.stream.process import Outcome
from connector.stream.window import Window


def labeler_id(info: LabelerInfo) -> str:
    return f"{info.name}@{info.version}" + (f"#{info.model}" if info.model else "")


def default_group(live_group: str, input_topic: str, target: str, window_flags: str) -> str:
    """Same command -> same group (so a rerun resumes); another window or target -> another group (a fresh
    replay, not one that believes it is already done)."""
    digest = hashlib.sha1(f"{input_topic}|{target}|{window_flags}".encode()).hexdigest()[:10]
    return f"{live_group}.replay.{digest}"


class FileSink:
    """Dry run: the folder `radlabel convert` writes (``<bundle id>.json``, ``dead-letter/<n>.json``, and
    ``index.jsonl``: one line per output in order, ``{"file", "key", <header>: <value>, ...}``, here with every
    header a Kafka record would carry) plus ``events.jsonl`` (every dead letter and skip, with its reason and
    source coordinates). Both logs are fsynced before the batch counts as
    delivered, so the offsets committed after it never get ahead of the files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.dead = DeadLetterFolder(folder)

    def write(self, outcomes: Sequence[Outcome], extra_headers: Sequence[tuple[str, bytes]]) -> None:
        records, events = [], []
        for outcome in outcomes:
            source = {k: v.decode() for k, v in outcome.record.source.headers()}
            for out in outcome.outputs:
                headers = {k: v.decode("utf-8", "replace") for k, v in [*out.headers, *extra_headers]}
                path = self.folder / f"{headers['bundle-id']}.json"
                tmp = path.with_suffix(".json.tmp")
                tmp.write_bytes(out.value)
                os.replace(tmp, path)
                records.append({"file": path.name, "key": out.key.decode("utf-8", "replace"), **headers})
            if outcome.dead_letter is not None:
                dead = outcome.dead_letter
                self.dead.write(dead.reason, dead.detail, f"{dead.source.topic}:{dead.source.partition}:"
                                f"{dead.source.offset}", dead.value)
                events.append({"kind": "dead-letter", "reason": dead.reason, "headers": source})
            events.extend({"kind": "skipped", "reason": reason, "headers": source} for reason in outcome.skipped)
        for name, lines in (("index.jsonl", records), ("events.jsonl", events)):
            if not lines:
                continue
            with open(self.folder / name, "a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
                handle.flush()
                os.fsync(handle.fileno())


class Replay(StreamApp):
    program = "replay"

    def __init__(self, settings: Settings, labeler: Labeler, window: Window, *, group_id: str,
                 output_topic: str | None = None, files: Path | None = None, fallback: Labeler | None = None,
                 metrics: Metrics | None = None, http_port: int = -1,
                 progress: Callable[[int, int], None] | None = None, poll_timeout_ms: int = 200) -> None:
        if group_id == settings.kafka.group_id:
            raise ValueError(f"the replay group must not be the live connector's group {group_id!r}")
        headers = [("replay-of", window.label().encode()), ("replay-labeler", labeler_id(labeler.info).encode())]
        super().__init__(settings, labeler, fallback=fallback, metrics=metrics, http_port=http_port,
                         output_topic=output_topic, extra_headers=headers, group_id=group_id,
                         window={tp: window.ranges[tp.partition] for tp in window.partitions()},
                         poll_timeout_ms=poll_timeout_ms)
        self.replay_window = window
        self.files = FileSink(files) if files is not None else None
        # progress(done, total): records of the window acted on, counting what earlier runs committed.
        self.progress = progress
        self.done = 0

    def on_started(self) -> None:
        from connector.logging import get_logger

        self.done = sum(self._committed[tp] - start for tp, (start, _) in (self.window or {}).items())
        get_logger(__name__).info("replay_started", window=self.replay_window.label(), group=self.group_id,
                                  labeler=self.labeler.info.name, to_files=self.files is not None,
                                  already_done=self.done)
        if self.progress is not None:
            self.progress(self.done, self.replay_window.total)

    async def act(self, inputs: list) -> None:  # noqa: ANN001 - InputRecord list, as in StreamApp
        await super().act(inputs)
        self.done += len(inputs)
        if self.progress is not None:
            self.progress(self.done, self.replay_window.total)

    async def deliver(self, outcomes: Sequence[Outcome]) -> None:
        if self.files is None:
            await super().deliver(outcomes)
        else:
            self.files.write(outcomes, self.extra_headers)

    def summary(self) -> dict:
        counts: dict[str, dict[str, float]] = {"dead_lettered": {}, "skipped": {}}
        published = 0.0
        for metric in self.metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == "radlabel_bundles_published_total":
                    published = sample.value
                for key in counts:
                    if sample.name == f"radlabel_{key}_total":
                        counts[key][sample.labels["reason"]] = sample.value
        return {
            "window": self.replay_window.label(),
            "group": self.group_id,
            "complete": self.complete,
            "records_in_window": self.replay_window.total,
            "records_done": self.done,
            "bundles": int(published),
            "dead_letters": {k: int(v) for k, v in sorted(counts["dead_lettered"].items())},
            "skipped": {k: int(v) for k, v in sorted(counts["skipped"].items())},
            "output": str(self.files.folder) if self.files is not None else self.output_topic,
        }
