"""``forensimg hash IMAGE``: the media hashes of any image (the Merkle root with ``--merkle``)."""

from __future__ import annotations

import hashlib

import click

from forensimg.cli._common import PATH, emit_json, json_option
from forensimg.hashing import MultiHasher, hash_image, normalize_algorithms
from forensimg.merkle import DEFAULT_CHUNK_SIZE, MerkleBuilder
from forensimg.registry import open as open_image


@click.command("hash")
@click.argument("image", nargs=-1, required=True, type=PATH)
@click.option(
    "-a", "--algorithm", "algorithms", multiple=True, default=("md5", "sha1", "sha256"), show_default=True,
    help="Hash algorithm (repeat, or give a comma list).",
)
@click.option("--format", "fmt", default=None, help="Force the format instead of detecting it.")
@click.option("--merkle", is_flag=True, help="Also print the Merkle root of the chunk SHA-256s (fimg spec §6).")
@click.option(
    "--chunk-size", type=click.IntRange(min=4096), default=None,
    help="Chunk size for --merkle (default: a fimg image's own, else 65536).",
)
@json_option
def cli(
    image: tuple[str, ...], algorithms: tuple[str, ...], fmt: str | None, merkle: bool, chunk_size: int | None,
    as_json: bool,
) -> int:
    """Hash the media of IMAGE (any format). Fails on a corrupt chunk.

    With --merkle, also print the Merkle root over the SHA-256 of each chunk: the same media gives the same
    root in any format for the same chunk size. For a fimg image the root is compared with the stored one
    (exit 1 when they differ).
    """
    algs = normalize_algorithms(",".join(algorithms))
    source: str | list[str] = image[0] if len(image) == 1 else list(image)
    code = 0
    with open_image(source, format=fmt) as img:
        doc: dict[str, object] = {"image": [str(p) for p in img.info.segments], "size": img.size}
        if not merkle:
            hashes = hash_image(img, algs)
        else:
            is_fimg = img.info.format == "fimg"
            cs = chunk_size or (img.chunk_size if is_fimg else DEFAULT_CHUNK_SIZE)
            if cs & (cs - 1):
                raise click.BadParameter(f"{cs} is not a power of two", param_hint="--chunk-size")
            hasher = MultiHasher(algs)
            builder = MerkleBuilder()
            block = max(cs, (4 << 20) // cs * cs)
            pos = 0
            try:
                while pos < img.size:
                    data = img.read_at(pos, block)
                    if not data:
                        break
                    hasher.update(data)
                    mv = memoryview(data)
                    for o in range(0, len(mv), cs):
                        builder.add(hashlib.sha256(mv[o : o + cs]).digest())
                    pos += len(data)
            finally:
                hashes = hasher.hexdigests()
            root = builder.root().hex()
            stored = img.info.details.get("merkle_root") if is_fimg and cs == img.chunk_size else None
            match = None if not stored else stored == root
            if match is False:
                code = 1
            doc["merkle"] = {"root": root, "chunk_size": cs, "stored": stored, "match": match}
        doc["hashes"] = hashes
        if as_json:
            emit_json(doc)
        else:
            for alg, hexd in hashes.items():
                click.echo(f"{alg.upper():<8}{hexd}")
            if merkle:
                m = doc["merkle"]
                assert isinstance(m, dict)
                click.echo(f"{'MERKLE':<8}{m['root']}  (chunk size {m['chunk_size']})")
                if m["match"] is True:
                    click.echo("        matches the root stored in the image")
                elif m["match"] is False:
                    click.echo(f"        MISMATCH: the image stores {m['stored']}")
    return code
