"""`mrishare pacs echo|find|get|send|nodes`: talk to a DICOM node named in nodes.json or given by address.

`find` and `get` take one exact PatientID; `get` writes into a new, non-identifying folder under
`--into` (the intake folder), so the participant shows up in the next scan. `send` refuses files
that are not marked de-identified unless `--allow-identified` is given.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from tui.cli.output import run_with_progress, stdout
from tui.core.errors import MrishareError
from tui.core.net.nodes import (
    DEFAULT_OUR_AE,
    DicomNode,
    get_node,
    load_nodes,
    nodes_path,
    with_overrides,
)


def _node_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_argument_group("node (a name from nodes.json, or an address)")
    where.add_argument("--node", metavar="NAME", help=f"a node from {nodes_path()}")
    where.add_argument("--host", help="the node's host name or IP address")
    where.add_argument("--port", type=int, help="the node's DICOM port")
    where.add_argument("--aet", metavar="AE", help="the node's AE title")
    where.add_argument("--our-aet", metavar="AE", help=f"our AE title (default {DEFAULT_OUR_AE})")
    where.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for an answer (default 30)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `pacs` and its subcommands."""
    pacs = subparsers.add_parser("pacs", help="verify, query, retrieve from and send to a DICOM node (PACS)")
    sub = pacs.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    p = sub.add_parser("echo", help="check that the node answers (C-ECHO)")
    _node_arguments(p)
    p.set_defaults(handler=run_echo)

    p = sub.add_parser("find", help="list the studies (and series) of one PatientID (C-FIND)")
    p.add_argument("patient_id", metavar="PATIENTID")
    p.add_argument("--series", action="store_true", help="also list each study's series")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    _node_arguments(p)
    p.set_defaults(handler=run_find)

    p = sub.add_parser("get", help="retrieve a PatientID's studies into a new folder under the intake folder")
    p.add_argument("patient_id", metavar="PATIENTID")
    p.add_argument("--into", type=Path, required=True, metavar="DIR", help="the intake folder")
    p.add_argument("--study", action="append", default=[], metavar="UID", help="only this study (repeatable)")
    p.add_argument("--series", action="append", default=[], metavar="UID",
                   help="only this series of the chosen study (repeatable; needs one --study)")
    p.add_argument("--move", action="store_true", help="use C-MOVE to our own Storage SCP instead of C-GET")
    p.add_argument("--listen-port", type=int, metavar="PORT", help="port of our Storage SCP for C-MOVE")
    _node_arguments(p)
    p.set_defaults(handler=run_get)

    p = sub.add_parser("send", help="send de-identified DICOM files or folders to the node (C-STORE)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--allow-identified", action="store_true",
                   help="also send files not marked PatientIdentityRemoved=YES (e.g. back to a clinical PACS)")
    _node_arguments(p)
    p.set_defaults(handler=run_send)

    p = sub.add_parser("nodes", help="list the configured nodes")
    p.set_defaults(handler=run_nodes)


def node_from_args(args: argparse.Namespace) -> DicomNode:
    """The node from `--node` (flags override its fields) or from `--host/--port/--aet`."""
    overrides = {"our_ae_title": args.our_aet, "timeout_s": args.timeout, "host": args.host, "port": args.port,
                 "ae_title": args.aet}
    if getattr(args, "move", False):
        overrides.update(retrieve="move", listen_port=args.listen_port)
    if args.node:
        return with_overrides(get_node(args.node), **overrides)
    if not (args.host and args.port and args.aet):
        raise MrishareError("name a node with --node, or give --host, --port and --aet")
    return with_overrides(DicomNode("command-line", args.aet, args.host, args.port), **overrides)


def run_echo(args: argparse.Namespace) -> int:
    """C-ECHO and print the round trip."""
    from tui.core.net import dicom_net

    node = node_from_args(args)
    seconds = dicom_net.echo(node)
    stdout.print(f"{node.label} answers C-ECHO{' over TLS' if node.uses_tls else ''} in {seconds * 1000:.0f} ms",
                 markup=False)
    return 0


def run_find(args: argparse.Namespace) -> int:
    """Print a PatientID's studies (and series)."""
    from tui.core.net import dicom_net

    node = node_from_args(args)
    studies = dicom_net.find_studies(node, args.patient_id)
    series = {s.study_uid: dicom_net.find_series(node, s.study_uid) for s in studies} if args.series else {}
    if args.json:
        rows = [{**asdict(s), "series": [asdict(x) for x in series.get(s.study_uid, [])]} for s in studies]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not studies:
        stdout.print(f"no studies for this PatientID on {node.name}", markup=False)
        return 1
    for study in studies:
        counts = f"{study.series_count or '?'} series, {study.instance_count or '?'} instances"
        stdout.print(f"{study.date or '-':8}  {'/'.join(study.modalities) or '-':6}  {counts:28}  "
                     f"{study.description or '(no description)'}", markup=False)
        stdout.print(f"          study {study.study_uid}", markup=False, style="dim")
        for s in series.get(study.study_uid, []):
            stdout.print(f"          {s.number if s.number is not None else '-':>5}  {s.modality:4} "
                         f"{s.instance_count or '?':>5} instances  {s.description}", markup=False)
            stdout.print(f"                 series {s.series_uid}", markup=False, style="dim")
    return 0


def run_get(args: argparse.Namespace) -> int:
    """Find the PatientID's studies and retrieve the chosen ones into one new intake folder."""
    from tui.core.net import dicom_net

    node = node_from_args(args)
    if args.series and len(args.study) != 1:
        raise MrishareError("--series needs exactly one --study")
    studies = [s.study_uid for s in dicom_net.find_studies(node, args.patient_id)]
    if args.study:
        unknown = [uid for uid in args.study if uid not in studies]
        if unknown:
            raise MrishareError(f"{len(unknown)} --study UID(s) do not belong to this PatientID on {node.name}")
        studies = args.study
    if not studies:
        raise MrishareError(f"no studies for this PatientID on {node.name}")
    folder = dicom_net.new_intake_folder(args.into)
    files = failed = 0
    try:
        for uid in studies:
            got = run_with_progress(dicom_net.retrieve(node, uid, folder, args.series))
            files, failed = files + len(got.files), failed + got.failed
    except BaseException:
        if not any(folder.iterdir()):
            folder.rmdir()
        raise
    stdout.print(f"{files} files from {len(studies)} stud{'y' if len(studies) == 1 else 'ies'} in {folder}"
                 + (f"; {failed} instances could not be retrieved" if failed else ""), markup=False)
    return 1 if failed else 0


def run_send(args: argparse.Namespace) -> int:
    """C-STORE the files; list every file the node refused."""
    from tui.core.net import dicom_net

    node = node_from_args(args)
    files = [f for path in args.paths for f in dicom_net.dicom_files(path)]
    if not files:
        raise MrishareError("no DICOM files found to send")
    if not args.allow_identified:
        identified = dicom_net.identified_files(files)
        if identified:
            raise MrishareError(f"{len(identified)} of {len(files)} files are not marked de-identified "
                                "(PatientIdentityRemoved is not YES); nothing was sent. De-identify them first, "
                                "or pass --allow-identified", identified[0])
    result = run_with_progress(dicom_net.store(node, files))
    for failure in result.failed:
        stdout.print(f"not stored: {failure.path}: {failure.reason}", markup=False, style="red")
    stdout.print(f"{len(result.sent)} of {len(files)} files stored on {node.label}", markup=False)
    return 0 if result.ok else 1


def run_nodes(args: argparse.Namespace) -> int:
    """One line per configured node."""
    nodes = load_nodes()
    if not nodes:
        stdout.print(f"no nodes configured in {nodes_path()}", markup=False)
        return 0
    for node in nodes.values():
        extra = f"retrieve by {node.retrieve}" + (f" to port {node.listen_port}" if node.retrieve == "move" else "")
        stdout.print(f"{node.label}  as {node.our_ae_title}, {extra}{', TLS' if node.uses_tls else ''}", markup=False)
    return 0
