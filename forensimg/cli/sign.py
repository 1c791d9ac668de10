"""``forensimg keygen OUT_PREFIX`` and ``forensimg sign IMAGE --key KEY``: Ed25519 signed manifests."""

from __future__ import annotations

import os
import sys

import click

from forensimg.cli._common import FILE_PATH, PATH, Ctx, emit_json, json_option, pass_ctx, record_custody
from forensimg.errors import CustodyError, WriteError
from forensimg.signing import generate_keypair, key_fingerprint, load_public_key, sign_image


@click.command("keygen")
@click.argument("out_prefix", type=PATH)
@json_option
def keygen_cli(out_prefix: str, as_json: bool) -> int:
    """Make an Ed25519 key pair: OUT_PREFIX.key (private, PEM, mode 0600) and OUT_PREFIX.pub (public, PEM).

    Existing files are never overwritten. Keep the private key off the evidence drive.
    """
    key_path, pub_path = generate_keypair(out_prefix)
    fp = key_fingerprint(load_public_key(pub_path))
    if as_json:
        emit_json({"private_key": str(key_path), "public_key": str(pub_path), "public_key_sha256": fp})
    else:
        click.echo(f"Private key: {key_path} (mode 0600; keep it secret)")
        click.echo(f"Public key:  {pub_path}")
        click.echo(f"Fingerprint: sha256 {fp}")
    return 0


@click.command("sign")
@click.argument("image", nargs=-1, required=True, type=PATH)
@click.option("--key", "key", required=True, type=FILE_PATH, help="Ed25519 private key (PEM).")
@click.option(
    "--passphrase-env", default=None, metavar="VAR", help="Environment variable holding the key's passphrase."
)
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None, help="Threads checking chunks [CPU count].")
@json_option
@pass_ctx
def sign_cli(
    ctx: Ctx, image: tuple[str, ...], key: str, passphrase_env: str | None, jobs: int | None, as_json: bool
) -> int:
    """Verify IMAGE and sign a manifest of it: writes IMAGE.manifest.json and IMAGE.manifest.sig.

    The manifest holds the media hashes (MD5, SHA-1, SHA-256), the stored hashes, the fimg Merkle root,
    the case metadata, the format and size, and every segment file's name, size and SHA-256. An image with
    a corrupt chunk or a hash mismatch is not signed (exit 1). Check with: forensimg verify IMAGE --public-key PUB.
    """
    password = os.environb.get(passphrase_env.encode()) if passphrase_env else None
    source: str | list[str] = image[0] if len(image) == 1 else list(image)
    mpath, spath, manifest = sign_image(
        source, key, examiner=ctx.examiner, workers=jobs or os.cpu_count() or 2, password=password
    )
    first = mpath.with_name(mpath.name[: -len(".manifest.json")])
    try:
        record_custody(
            ctx,
            first,
            "sign",
            inputs=[str(first.with_name(s["name"])) for s in manifest["segments"]],
            outputs=[str(mpath), str(spath)],
            result={
                "media_hashes": manifest["media_hashes"],
                "public_key_sha256": manifest["signer"]["public_key_sha256"],
            },
        )
    except (WriteError, CustodyError) as exc:
        sys.stderr.write(f"forensimg: warning: custody event not recorded: {exc}\n")
    if as_json:
        emit_json({"manifest": str(mpath), "signature": str(spath), "content": manifest})
    else:
        click.echo(f"Manifest:  {mpath}")
        click.echo(f"Signature: {spath} (Ed25519, key sha256 {manifest['signer']['public_key_sha256']})")
        for alg, hexd in manifest["media_hashes"].items():
            click.echo(f"  {alg.upper():<8}{hexd}")
        click.echo(f"SIGNED: {len(manifest['segments'])} segment file(s), media hashes and case metadata")
    return 0
