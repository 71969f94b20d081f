"""Training-set fingerprints: content hashes of what a model was trained on, and the leak check that uses them.

A fingerprint lists, for every training row, its name, the sha256 of the photograph's decoded pixels and the
sha256 of its decoded mask stack (all the set's channels, named, in schema order). Hashing decoded pixels, not
file bytes or names, makes a re-encoded or renamed copy of an image the same image. A trainer writes its
fingerprint as ``fingerprint.json`` into the run folder and references it (file name, digest, count) under
``training_set`` in every checkpoint's config; ``retina generate``, ``retina layout sample`` and ``retina render``
copy their generators' fingerprints into the output set's ``retina.json`` provenance (``generators``), so a
benchmark can refuse a synthetic set whose generators saw its test images (:func:`find_leaks`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retina.common.canonical import CanonicalDataset, Sample
from retina.common.errors import RetinaError
from retina.common.imageio import write_text_atomic

FINGERPRINT_FILE = "fingerprint.json"
FORMAT = "retina-fingerprint"
IMAGE_RULE = "sha256 of the decoded uint8 pixels (H, W, 3), shape first"
MASK_RULE = "sha256 of the decoded masks of the listed channels: per channel its name, shape and packed bits"


def image_digest(pixels: np.ndarray) -> str:
    digest = hashlib.sha256(repr(tuple(pixels.shape)).encode())
    digest.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def masks_digest(stack: np.ndarray, channels: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for channel, plane in zip(channels, stack, strict=True):
        digest.update(f"{channel}{tuple(plane.shape)}".encode())
        digest.update(np.packbits(np.asarray(plane, dtype=bool)).tobytes())
    return digest.hexdigest()


class ContentIndex:
    """Content digests of a set's rows, computed on demand and cached (a mask digest per channel list)."""

    def __init__(self, data: CanonicalDataset):
        self.data = data
        self._images: dict[str, str] = {}
        self._masks: dict[tuple[str, tuple[str, ...]], str] = {}

    def image(self, name: str) -> str | None:
        if not self.data.has_images:
            return None
        if name not in self._images:
            self._images[name] = image_digest(self.data.load_image(name))
        return self._images[name]

    def masks(self, name: str, channels: Sequence[str]) -> str | None:
        channels = tuple(channels)
        if not channels or any(c not in self.data.channels for c in channels):
            return None
        key = (name, channels)
        if key not in self._masks:
            self._masks[key] = masks_digest(self.data.load_masks(name, channels), channels)
        return self._masks[key]


def fingerprint(parts: Iterable[tuple[CanonicalDataset, Sequence[Sample]]], split: str = "train") -> dict[str, Any]:
    """The fingerprint document of the rows a model trains on (several sets for a bench model: real + synthetic)."""
    sets, entries = [], []
    for number, (data, samples) in enumerate(parts):
        index = ContentIndex(data)
        sets.append({"path": str(data.root.resolve()), "channels": list(data.channels), "count": len(samples)})
        for sample in samples:
            entries.append({"set": number, "name": sample.name, "image": index.image(sample.name),
                            "masks": index.masks(sample.name, data.channels)})
    content = sorted(f"{e['image']}:{e['masks']}" for e in entries)
    return {"format": FORMAT, "version": 1, "split": split, "count": len(entries), "sets": sets,
            "image_rule": IMAGE_RULE, "mask_rule": MASK_RULE,
            "sha256": hashlib.sha256("\n".join(content).encode()).hexdigest(), "samples": entries}


def fingerprint_reference(document: dict[str, Any], name: str = FINGERPRINT_FILE) -> dict[str, Any]:
    """What a checkpoint config stores under ``training_set``: the file beside it, its digest, what it covers."""
    return {"fingerprint": name, "sha256": document["sha256"], "count": document["count"],
            "split": document["split"], "data": [s["path"] for s in document["sets"]]}


def write_fingerprint(folder: str | Path, document: dict[str, Any], name: str = FINGERPRINT_FILE) -> dict[str, Any]:
    """Write ``folder/name``; returns its :func:`fingerprint_reference`."""
    write_text_atomic(Path(folder) / name, json.dumps(document, indent=1) + "\n")
    return fingerprint_reference(document, name)


def _checkpoint_config(weights: Path) -> dict[str, Any]:
    """A retina checkpoint's config from its safetensors header, without loading tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return json.loads(metadata.get("retina", "{}")).get("config", {})
    except (SafetensorError, OSError, ValueError) as error:
        raise RetinaError(f"{weights}: not a readable safetensors checkpoint ({error})") from None


def generator_record(role: str, name: str, checkpoint: str | Path | None, learned: bool = False) -> dict[str, Any]:
    """What an output set's provenance says about one generator and the data it was trained on. ``learned``: a
    trained model given without its checkpoint's path (its training set then stays unknown)."""
    if checkpoint is None and learned:
        return {"role": role, "name": name, "learned": True, "checkpoint": None, "training_set": None,
                "note": "checkpoint path not given: its training set is unknown"}
    if checkpoint is None:
        return {"role": role, "name": name, "learned": False, "checkpoint": None, "training_set": None,
                "note": "procedural: drawn by rules, trained on no data"}
    from retina.common.checkpoint import checkpoint_paths, file_sha256

    weights = checkpoint_paths(checkpoint)[0]
    record = {"role": role, "name": name, "learned": True, "checkpoint": str(weights),
              "checkpoint_sha256": file_sha256(weights), "training_set": None}
    reference = _checkpoint_config(weights).get("training_set")
    path = weights.parent / reference["fingerprint"] if isinstance(reference, dict) else None
    if path is None or not path.is_file():
        record["note"] = ("the checkpoint records no training-set fingerprint (trained before fingerprints, or copied "
                          "without its run folder): benches cannot check it for leaks")
        return record
    try:
        document = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RetinaError(f"{path}: not valid JSON ({error}); restore it from the run folder") from None
    if document.get("sha256") != reference.get("sha256"):
        raise RetinaError(f"{path}: digest {str(document.get('sha256'))[:12]} differs from the one {weights.name} "
                          f"records ({str(reference.get('sha256'))[:12]}); the file belongs to another run")
    record["training_set"] = document
    return record


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict nested in ``value`` (provenance nests: merged shards, masks rendered from a layout set)."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def generator_records(data: CanonicalDataset) -> tuple[list[dict[str, Any]], list[str]]:
    """The generator records in a set's provenance, and the generators it names that cannot be checked."""
    provenance = data.info.get("provenance", {})
    records = [r for d in _walk(provenance) for r in d.get("generators", []) if isinstance(r, dict)]
    unverifiable = [f"{r['role']} {r['name']} ({r.get('checkpoint')})" for r in records
                    if r.get("learned") and not r.get("training_set")]
    generated = any(d.get("command") in ("generate", "render", "layout sample") for d in _walk(provenance))
    if generated and not records:
        unverifiable.append("its generators (made before fingerprints: retina.json lists none)")
    return records, unverifiable


def find_leaks(synthetic: CanonicalDataset, tests: Sequence[tuple[CanonicalDataset, Sequence[str]]]
               ) -> tuple[list[str], list[str]]:
    """Test images that the synthetic set's generators trained on, or that the set itself contains, by content.

    Returns ``(overlaps, unverifiable)``: one entry per test image seen, e.g. ``"SET/NAME (layout stylegan, renderer
    drgan as OTHER)"`` (trained on by both, the renderer under another name), and the learned generators without a
    fingerprint.
    """
    records, unverifiable = generator_records(synthetic)
    indexes = [(ContentIndex(data), data, names) for data, names in tests]
    by_image: dict[str, list[str]] = {}
    for index, data, names in indexes:
        for name in names:
            digest = index.image(name)
            if digest is not None:
                by_image.setdefault(digest, []).append(f"{data.root.name}/{name}")
    by_masks: dict[tuple[str, ...], dict[str, list[str]]] = {}

    def masks_of(channels: tuple[str, ...]) -> dict[str, list[str]]:
        if channels not in by_masks:
            table: dict[str, list[str]] = {}
            for index, data, names in indexes:
                for name in names:
                    digest = index.masks(name, channels)
                    if digest is not None:
                        table.setdefault(digest, []).append(f"{data.root.name}/{name}")
            by_masks[channels] = table
        return by_masks[channels]

    seen: dict[str, set[str]] = {}  # test image -> how the synthetic set saw it

    def match(image: str | None, channels: tuple[str, ...], masks: str | None, who: str, as_name: str) -> None:
        hits = by_image.get(image, []) if image is not None else []
        hits = hits + (masks_of(channels).get(masks, []) if masks is not None and channels else [])
        for hit in hits:  # the name it was seen under only where it differs: content, not names, matched
            seen.setdefault(hit, set()).add(who if hit.endswith(f"/{as_name}") else f"{who} as {as_name}")

    for record in records:
        document = record.get("training_set") or {}
        sets = document.get("sets", [])
        for entry in document.get("samples", []):
            channels = tuple(sets[entry.get("set", 0)]["channels"]) if sets else ()
            match(entry.get("image"), channels, entry.get("masks"), f"{record['role']} {record['name']}",
                  entry["name"])
    own = ContentIndex(synthetic)
    for name in synthetic.names:
        match(own.image(name), tuple(synthetic.channels), own.masks(name, synthetic.channels),
              "in the synthetic set", name)
    overlaps = [f"{image} ({', '.join(sorted(ways))})" for image, ways in sorted(seen.items())]
    return overlaps, unverifiable
