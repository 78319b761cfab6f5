"""``facecomic-train`` and ``facecomic-predict``: the trainer's events rendered on a terminal."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from trainer import __version__
from trainer.common.assets import default_model_path
from trainer.common.configs import (
    PREDICTION_BATCH_SIZE,
    RECIPES,
    ClusterOptions,
    DecodeOptions,
    GridSpec,
    TrainConfig,
)
from trainer.common.console import (
    EXIT_OK,
    EXIT_PARTIAL,
    PipeSafeWriter,
    error,
    for_stream,
    interrupted,
    say,
    sigterm_as_interrupt,
)
from trainer.common.errors import Cancelled, FaceComicError
from trainer.common.flags import add_config_flags, config_from_args, given_config_values
from trainer.common.new_files import check_folder
from trainer.common.outputs import OutputTarget, check_outputs, refuse_inputs, write_text
from trainer.common.text import fixed, one_line, plural
from trainer.prediction.export import csv_outputs, write_predictions_csv
from trainer.prediction.report import print_rows
from trainer.prediction.report import summary as predictions_summary
from trainer.sort_cli import (
    add_sort_flags,
    check_args,
    check_sources,
    prune_for,
    sort_from_csv,
    sort_predictions,
    undo_main,
)

CLUSTER_GROUP = "on a Dask cluster (pip install 'facecomic[cluster]'; see docs/cluster.md)"

# -- facecomic-train ------------------------------------------------------------------------------


def build_train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecomic-train",
        description="Grid-search and train a head (linear by default on pretrained features, or the "
        "paper's MLP) on a folder with two class folders (e.g. faces/ and comics/), then score it "
        "once on the holdout.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder holding the two class folders")
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="start from a preset: paper = --features pixels --split paper --lr 0.01 0.001 "
        "--epochs 1 3 5 --head mlp --heads 1, the app's Paper recipe; any flag given also "
        "overrides it",
    )
    add_config_flags(parser, TrainConfig, only_if_given=True)
    add_config_flags(parser, GridSpec, only_if_given=True)
    add_config_flags(parser, DecodeOptions)
    add_config_flags(parser.add_argument_group(CLUSTER_GROUP), ClusterOptions, exclude=("chunk_size",))
    parser.add_argument("--out", metavar="MODEL.safetensors", type=Path, help="save the final model here")
    parser.add_argument("--json", metavar="RESULTS.json", type=Path, help="write the results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the results")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def train_main(argv: Sequence[str] | None = None) -> int:
    parser = build_train_parser()
    args = parser.parse_args(argv)
    try:
        base_config, base_grid = RECIPES[args.recipe] if args.recipe else (TrainConfig(), GridSpec())
        config = dataclasses.replace(base_config, **given_config_values(TrainConfig, args))
        grid = dataclasses.replace(base_grid, **given_config_values(GridSpec, args))
        decode = config_from_args(DecodeOptions, args)
        cluster = config_from_args(ClusterOptions, args)
    except ValueError as err:
        parser.error(str(err))
    try:
        with sigterm_as_interrupt():
            # Every output is checked before the run (and before torch loads), not after it.
            targets = check_outputs({"--out": args.out, "--json": args.json})
            refuse_dataset_images(args.data_dir, targets)
            if cluster.address is not None:  # features into the cache on the cluster, then as ever
                from trainer.cluster.commands import extract_on_cluster

                extract_on_cluster(args.data_dir, config, decode, cluster, quiet=args.quiet)
            from trainer.training.experiment import run_experiment  # torch loads here, not for --help

            reporter = ConsoleReporter(sys.stdout, sys.stderr, quiet=args.quiet)
            events = run_experiment(args.data_dir, config=config, grid=grid, decode=decode)
            try:
                result = reporter.consume(events)
            finally:
                events.close()  # on Ctrl+C or SIGTERM: stops the decode pool and keeps the cache
            if args.out:
                from trainer.model.model_file import save_model

                save_model(args.out, result)
                say(f"Model saved to {one_line(args.out)}")
            else:
                say("Model not saved (pass --out MODEL.safetensors to keep it).")
            if args.json:
                write_text(args.json, json.dumps(result.to_json(), indent=2) + "\n")
                say(f"Results written to {one_line(args.json)}")
        return EXIT_OK
    except (Cancelled, KeyboardInterrupt) as err:
        # Every write is atomic, so an interrupted save leaves the old file or none.
        kept = ", and the images decoded so far are kept in the cache" if decode.use_cache else ""
        return interrupted(
            "facecomic-train",
            err if isinstance(err, KeyboardInterrupt) else KeyboardInterrupt(),
            f"nothing half-written was left behind{kept}.",
        )
    except (FaceComicError, OSError) as err:
        return error("facecomic-train", err)


def refuse_dataset_images(data_dir: str | os.PathLike[str], targets: Sequence[OutputTarget]) -> None:
    """An output that already exists must not be one of the data set's images. Only then is the
    folder scanned here (the run scans it again), so the usual new output costs nothing."""
    if not any(t.identity is not None for t in targets):
        return
    from trainer.data.dataset import scan_dataset

    scan = scan_dataset(data_dir)
    refuse_inputs(targets, (path for files in scan.files for path in files))


class ConsoleReporter:
    """Prints results to ``out`` and a live progress line to ``err`` (redrawn on a terminal)."""

    def __init__(self, out: TextIO, err: TextIO, *, quiet: bool = False) -> None:
        from trainer.training.progress import ProgressTracker

        self.out, self.err, self.quiet = out, err, quiet
        self.tty = err.isatty()
        self.tracker = ProgressTracker()
        self._last_line_len = 0
        self._last_percent = -1
        self._grid = None

    def consume(self, events):
        """Render every event; return the generator's result."""
        from trainer.common.events import run_events

        result = run_events(events, self.handle)
        self._clear()
        return result

    def handle(self, event) -> None:
        from trainer.training import events as ev
        from trainer.training import report

        progress = self.tracker.update(event)
        match event:
            case ev.DatasetScanned():
                self._print(
                    report.format_dataset(
                        event.root, event.class_names, event.counts, event.skipped, event.ignored
                    )
                )
            case ev.FeaturesFinished():
                what = f" ({event.description})" if event.description else ""
                self._files_done(f"Extracted features{what} of {plural(event.extracted, 'image')}", event)
            case ev.CacheDiscarded():
                self._print(report.format_cache_discarded(event))
            case ev.SplitMade():
                self._print(report.format_split(event.method, event.class_names, event.counts))
            case ev.EpochFinished(phase="grid"):
                self._print(
                    f"  lr {event.lr:g} epoch {event.epoch}: train loss {fixed(event.train_loss, 4)}, "
                    f"val acc {fixed(event.val_accuracy, 4)}, val loss {fixed(event.val_loss, 4)}",
                    verbose=True,
                )
            case ev.EpochFinished(phase="final" | "refit"):
                self._print(
                    f"  {event.phase} epoch {event.epoch}: train loss {fixed(event.train_loss, 4)}",
                    verbose=True,
                )
            case ev.LinearFitFinished(phase="grid"):
                self._print(f"  {report.format_linear_fit(event)}", verbose=True)
            case ev.LinearFitFinished():
                self._print(f"  {event.phase}: {report.format_linear_fit(event)}", verbose=True)
            case ev.ConfigFinished(l2=l2) if l2 is not None:
                self._print(
                    f"  L2 {l2:g}: val acc {fixed(event.val_accuracy, 4)}, val loss {fixed(event.val_loss, 4)}",
                    verbose=True,
                )
            case ev.FinalTrainingStarted(phase="refit"):
                self._print(
                    f"Refitting {report.format_setting(event)} on every image "
                    f"({event.train_size:,}) for the saved model; the holdout figures are the train+val model's"
                )
            case ev.FinalTrainingStarted():
                self._print(
                    f"Retraining {report.format_setting(event)} on train+val "
                    f"({plural(event.train_size, 'image')})"
                )
            case ev.NonFacesPrepared():
                cached = " (from cache)" if event.from_cache else ""
                self._print(
                    f"Prepared {event.count:,} synthetic non-faces in {event.seconds:.1f}s{cached}",
                    verbose=True,
                )
            case ev.HoldoutEvaluated():
                pass
            case ev.RunFinished(result=result):
                self._print(
                    report.format_grid(
                        result.grid,
                        result.grid_results,
                        result.best,
                        result.train_config.select_by,
                        result.train_config.head,
                    )
                )
                heads = result.architecture.get("heads", 1)
                if result.train_config.head == "linear":
                    self._print(
                        "Model: a linear head (softmax regression, L2 "
                        f"{result.best.l2:g}), fitted to convergence: the same weights for every seed"
                    )
                elif heads > 1:
                    self._print(f"Model: an ensemble of {heads} heads, probabilities averaged")
                self._print(report.format_holdout(result.holdout, result.class_names))
                self._print(f"Finished in {result.seconds:.1f}s on {result.device}")
        if isinstance(event, (ev.FeaturesProgressed, ev.BatchFinished, ev.LinearFitFinished)):
            self._progress(progress)

    def _files_done(self, what: str, event) -> None:
        """The end of decoding or feature extraction: time, cache use and the unreadable files."""
        from trainer.training import report

        cached = f", {event.from_cache:,} from cache" if event.from_cache else ""
        self._print(f"{what} in {event.seconds:.1f}s{cached}")
        if event.unreadable:
            self._print(report.format_skipped(event.unreadable, "unreadable, skipped"))

    def _print(self, text: str, *, verbose: bool = False) -> None:
        if not text or (verbose and self.quiet):
            return
        self._clear()
        say(text, self.out)

    def _progress(self, progress) -> None:
        from trainer.training.progress import format_duration

        if self.quiet:
            return
        percent = int(progress.fraction * 100)
        eta = format_duration(progress.eta_seconds)
        if self.tty:
            filled = int(progress.fraction * 24)
            line = for_stream(
                f"[{'#' * filled}{'.' * (24 - filled)}] {percent:3d}%  {progress.text}  ETA {eta}", self.err
            )
            pad = max(0, self._last_line_len - len(line))
            self.err.write("\r" + line + " " * pad)
            self.err.flush()
            self._last_line_len = len(line)
        elif percent // 25 != self._last_percent // 25 and percent > 0:
            # Without a terminal, a few milestone lines rather than thousands of redraws.
            say(f"{percent:3d}%  {progress.text}  ETA {eta}", self.err)
        self._last_percent = percent

    def _clear(self) -> None:
        if self.tty and self._last_line_len:
            self.err.write("\r" + " " * self._last_line_len + "\r")
            self.err.flush()
            self._last_line_len = 0


# -- facecomic-predict ----------------------------------------------------------------------------


def build_predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecomic-predict",
        description="Label images as real face or comic with a FaceComic model.",
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="image files or folders (searched recursively)"
    )
    parser.add_argument("--model", type=Path, help="model file (default: the bundled default model)")
    parser.add_argument(
        "--csv",
        type=Path,
        metavar="OUT.csv",
        help="also write path,label,confidence,flag,error, and OUT.csv.json (model, version, date)",
    )
    parser.add_argument(
        "--excel-safe",
        action="store_true",
        help="in the CSV, prefix text cells starting with = + - or @ with ' so a spreadsheet "
        "does not run them as formulas (the values then differ from the file names)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=PREDICTION_BATCH_SIZE,
        help=f"images per batch (default: {PREDICTION_BATCH_SIZE})",
    )
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="also write DIR/<name>.why.png (the answer's heat map over the image) and "
        "DIR/<name>.heat.png (the map alone, grey); existing files are never replaced",
    )
    parser.add_argument(
        "--input-list",
        type=Path,
        metavar="FILE",
        help="also predict the images named in FILE, one path per line (with --cluster also "
        "URL-style paths that fsspec reads, such as s3://bucket/x.jpg)",
    )
    add_sort_flags(parser)
    group = parser.add_argument_group(CLUSTER_GROUP)
    add_config_flags(group, ClusterOptions)
    group.add_argument(
        "--resume",
        action="store_true",
        help="with --cluster: continue the interrupted job whose shards are in OUT.csv.parts/",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def predict_main(argv: Sequence[str] | None = None) -> int:
    parser = build_predict_parser()
    args = parser.parse_args(argv)
    problem = check_args(args) or _cluster_problem(args)
    if problem:
        parser.error(problem)
    try:
        cluster = config_from_args(ClusterOptions, args)
    except ValueError as err:
        parser.error(str(err))
    try:
        with sigterm_as_interrupt():
            if args.undo_sort is not None:
                return undo_main(args)
            if args.from_csv is not None:
                return sort_from_csv(args)
            if cluster.address is not None:  # Dask loads only here (docs/cluster.md)
                from trainer.cluster.commands import predict_on_cluster

                return predict_on_cluster(args, cluster)
            return _predict(args)
    except KeyboardInterrupt as err:
        return interrupted(
            "facecomic-predict", err, "no CSV was written (heat maps already written are complete)."
        )
    except (FaceComicError, OSError) as err:
        return error("facecomic-predict", err)


def _cluster_problem(args: argparse.Namespace) -> str | None:
    """Why these flags do not go with (or without) ``--cluster``, or None."""
    if getattr(args, "ClusterOptions.address") is None:
        return "--resume goes with --cluster" if args.resume else None
    if args.csv is None:
        return "--cluster writes its results to a CSV: add --csv OUT.csv"
    drop = [flag for flag, given in (("--sort-into", args.sort_into), ("--explain", args.explain)) if given]
    return (
        f"--cluster scores only (sort from its CSV with --from-csv); drop {', '.join(drop)}" if drop else None
    )


def _predict(args: argparse.Namespace) -> int:
    model_path = args.model or default_model_path()
    if args.input_list is not None:
        from trainer.data.input_list import is_remote, local_path, read_input_list

        entries = read_input_list(args.input_list)
        remote = next((e for e in entries if is_remote(e)), None)
        if remote is not None:
            raise FaceComicError(
                f"{one_line(remote)} in the input list is a URL; only --cluster reads those."
            )
        args.paths = [*args.paths, *map(local_path, entries)]
    # The CSV (and its sidecar) must not be the model or an image given: checked before the
    # model loads, and against every image found in the folders before any is predicted.
    outputs = csv_outputs(args.csv, "--csv") if args.csv else {}
    targets = check_outputs(outputs, inputs=[model_path, *args.paths])
    prune = prune_for(args)  # --sort-into: never a folder holding an input; left out of the walk
    _explain_folder(args.explain)
    if args.model is None and not model_path.exists():
        raise FaceComicError(
            f"No default model is installed ({model_path} is missing); pass --model MODEL.safetensors."
        )
    from trainer.data.dataset import collect_images
    from trainer.prediction.predictor import Predictor

    predictor = Predictor.from_file(model_path)
    paths, skipped = collect_images(args.paths, prune=prune)
    for s in skipped:
        say(f"{one_line(s.path)}\tskipped\t{one_line(s.reason)}", sys.stderr)
    if not paths:
        raise FaceComicError("No images found in " + ", ".join(one_line(p) for p in args.paths) + ".")
    refuse_inputs(targets, paths)
    check_sources(args, paths)  # --move: a read-only folder is said before predicting
    predictions = []
    stdout = PipeSafeWriter(sys.stdout)
    explain = _Explaining(predictor.loaded, args.explain) if args.explain else None
    for batch in predictor.predict_batches(paths, batch_size=args.batch_size):
        if explain is not None:
            explain.batch(paths[len(predictions) : len(predictions) + len(batch)], batch)
        print_rows(batch, stdout, sorting=args.sort_into is not None)
        predictions.extend(batch)
    sidecar = None
    if args.csv:
        sidecar = write_predictions_csv(args.csv, predictions, model_path, excel_safe_cells=args.excel_safe)
    failed = sum(not p.ok for p in predictions)
    summary = predictions_summary(predictions)
    if explain is not None:
        summary += f"; {explain.written:,} heat maps written to {one_line(args.explain)}"
    if args.csv:
        where = f"model, version and date in {one_line(sidecar)}" if sidecar else "a stream: no sidecar"
        summary += f"; CSV written to {one_line(args.csv)} ({where})"
    say(summary, sys.stderr)
    if args.sort_into is not None:
        return max(
            sort_predictions(args, predictions, predictor.loaded.class_names), EXIT_PARTIAL * bool(failed)
        )
    return EXIT_PARTIAL if failed else EXIT_OK


def _explain_folder(target: Path | None) -> None:
    """``--explain``'s folder: created when missing; a file or an unwritable folder is refused."""
    if target is None:
        return
    if target.exists() and not target.is_dir():
        raise FaceComicError(f"{target} is a file; --explain needs a folder.")
    target.mkdir(parents=True, exist_ok=True)
    check_folder(target)


class _Explaining:
    """``--explain``: the heat maps of each batch's readable images, after its predictions."""

    def __init__(self, loaded, folder: Path) -> None:
        from trainer.prediction.explain import Explainer

        self.explainer = Explainer(loaded)
        self.folder = folder
        self.taken: set[str] = set()
        self.written = 0

    def batch(self, paths, predictions) -> None:
        from trainer.common.errors import ImageDecodeError
        from trainer.prediction.explain import explain_to_folder

        for path, prediction in zip(paths, predictions, strict=True):
            if not prediction.ok:
                continue
            try:
                explain_to_folder(self.explainer, self.folder, path, prediction, self.taken)
            except ImageDecodeError as err:  # changed or removed since it was predicted
                say(f"{one_line(path)}\terror\tno heat map: {one_line(err.reason)}", sys.stderr)
                continue
            self.written += 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
