"""``forensimg hash IMAGE``: the media hashes of any image (the Merkle root with ``--merkle``)."""

from __future__ import annotations

import click

from forensimg.cli._common import emit_json, json_option
from forensimg.hashing import hash_image, normalize_algorithms
from forensimg.registry import open as open_image


@click.command("hash")
@click.argument("image", nargs=-1, required=True, type=click.Path())
@click.option(
    "-a", "--algorithm", "algorithms", multiple=True, default=("md5", "sha1", "sha256"), show_default=True,
    help="Hash algorithm (repeat, or give a comma list).",
)
@click.option("--format", "fmt", default=None, help="Force the format instead of detecting it.")
@json_option
def cli(image: tuple[str, ...], algorithms: tuple[str, ...], fmt: str | None, as_json: bool) -> int:
    """Hash the media of IMAGE (any format). Fails on a corrupt chunk."""
    algs = normalize_algorithms(",".join(algorithms))
    source: str | list[str] = image[0] if len(image) == 1 else list(image)
    with open_image(source, format=fmt) as img:
        hashes = hash_image(img, algs)
        if as_json:
            emit_json({"image": [str(p) for p in img.info.segments], "size": img.size, "hashes": hashes})
        else:
            for alg, hexd in hashes.items():
                click.echo(f"{alg.upper():<8}{hexd}")
    return 0
