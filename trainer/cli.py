"""``facecomic-train`` and ``facecomic-predict``: the trainer's events rendered on a terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from trainer import __version__
from trainer.common.assets import default_model_path
from trainer.common.atomic import atomic_write_text
from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
from trainer.common.errors import Cancelled, FaceComicError
from trainer.common.flags import add_config_flags, config_from_args
from trainer.prediction.export import printable, sidecar_path, write_predictions_csv

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


# -- facecomic-train ------------------------------------------------------------------------------


def build_train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecomic-train",
        description="Grid-search and train the paper's MLP on a folder with two class folders "
        "(e.g. faces/ and comics/), then score it once on the holdout.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder holding the two class folders")
    add_config_flags(parser, TrainConfig)
    add_config_flags(parser, GridSpec)
    add_config_flags(parser, DecodeOptions)
    parser.add_argument("--out", metavar="MODEL.safetensors", type=Path, help="save the final model here")
    parser.add_argument("--json", metavar="RESULTS.json", type=Path, help="write the results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the results")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def train_main(argv: Sequence[str] | None = None) -> int:
    parser = build_train_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(TrainConfig, args)
        grid = config_from_args(GridSpec, args)
        decode = config_from_args(DecodeOptions, args)
    except ValueError as err:
        parser.error(str(err))
    try:
        for target in (args.out, args.json):
            check_writable(target)
        from trainer.training.experiment import run_experiment  # torch loads here, not for --help

        reporter = ConsoleReporter(sys.stdout, sys.stderr, quiet=args.quiet)
        events = run_experiment(args.data_dir, config=config, grid=grid, decode=decode)
        try:
            result = reporter.consume(events)
        finally:
            events.close()  # on Ctrl+C: stops the decode pool and keeps the (atomic) cache
        if args.out:
            from trainer.model.model_file import save_model

            save_model(args.out, result)
            say(f"Model saved to {args.out}")
        else:
            say("Model not saved (pass --out MODEL.safetensors to keep it).")
        if args.json:
            atomic_write_text(args.json, json.dumps(result.to_json(), indent=2) + "\n")
            say(f"Results written to {args.json}")
        return EXIT_OK
    except (Cancelled, KeyboardInterrupt):
        # Every write is atomic, so an interrupted save leaves the old file or none.
        say("facecomic-train: cancelled; nothing half-written was left behind.", sys.stderr)
        return EXIT_CANCELLED
    except FaceComicError as err:
        say(f"facecomic-train: error: {err}", sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        say(f"facecomic-train: error: {describe_os_error(err)}", sys.stderr)
        return EXIT_USAGE


def check_writable(target: Path | None) -> None:
    """Fail before a long run, not after it, when an output path cannot be written."""
    if target is None:
        return
    parent = target.expanduser().resolve().parent
    if target.is_dir():
        raise FaceComicError(f"{target} is a folder; give a file name to write.")
    if not parent.is_dir():
        raise FaceComicError(f"Cannot write {target}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK):
        raise FaceComicError(f"Cannot write {target}: the folder {parent} is not writable.")


def for_stream(text: str | os.PathLike[str], stream: TextIO) -> str:
    """``text`` that ``stream`` can always encode: file-name bytes that are not UTF-8 become
    ``\\xff`` (:func:`printable`), and characters the stream's encoding lacks (an ASCII pipe) become
    ``\\u2026``-style escapes, instead of a ``UnicodeEncodeError`` that would end the run."""
    text = printable(text)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        pass
    return text


def say(text: str, stream: TextIO | None = None) -> None:
    """Print one line to ``stream`` (stdout by default) that it can encode."""
    stream = sys.stdout if stream is None else stream
    print(for_stream(text, stream), file=stream, flush=True)


def describe_os_error(err: OSError) -> str:
    where = f" ({err.filename})" if err.filename else ""
    return f"{err.strerror or err}{where}."


class ConsoleReporter:
    """Prints results to ``out`` and a live progress line to ``err`` (redrawn on a terminal)."""

    def __init__(self, out: TextIO, err: TextIO, *, quiet: bool = False) -> None:
        from trainer.common.progress import ProgressTracker

        self.out, self.err, self.quiet = out, err, quiet
        self.tty = err.isatty()
        self.tracker = ProgressTracker()
        self._last_line_len = 0
        self._last_percent = -1
        self._grid = None

    def consume(self, events):
        """Render every event; return the generator's result."""
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                self._clear()
                return stop.value
            self.handle(event)

    def handle(self, event) -> None:
        from trainer.common import events as ev
        from trainer.training import report

        progress = self.tracker.update(event)
        match event:
            case ev.DatasetScanned():
                self._print(report.format_dataset(event.root, event.class_names, event.counts, event.skipped))
            case ev.DecodeFinished():
                self._files_done(f"Decoded {event.decoded:,} images", event)
            case ev.FeaturesFinished():
                self._files_done(f"Extracted features of {event.extracted:,} images", event)
            case ev.SplitMade():
                self._print(report.format_split(event.method, event.class_names, event.counts))
            case ev.EpochFinished(phase="grid"):
                self._print(
                    f"  lr {event.lr:g} epoch {event.epoch}: train loss {event.train_loss:.4f}, "
                    f"val acc {event.val_accuracy:.4f}, val loss {event.val_loss:.4f}",
                    verbose=True,
                )
            case ev.EpochFinished(phase="final" | "refit"):
                self._print(
                    f"  {event.phase} epoch {event.epoch}: train loss {event.train_loss:.4f}", verbose=True
                )
            case ev.FinalTrainingStarted(phase="refit"):
                self._print(
                    f"Refitting lr {event.lr:g}, {event.epochs} epochs on every image ({event.train_size:,}) "
                    "for the saved model; the holdout figures above are from before"
                )
            case ev.FinalTrainingStarted():
                self._print(
                    f"Retraining lr {event.lr:g}, {event.epochs} epochs on train+val ({event.train_size:,} images)"
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
                        result.grid, result.grid_results, result.best, result.train_config.select_by
                    )
                )
                heads = result.architecture.get("heads", 1)
                if heads > 1:
                    self._print(f"Model: an ensemble of {heads} heads, probabilities averaged")
                self._print(report.format_holdout(result.holdout, result.class_names))
                self._print(f"Finished in {result.seconds:.1f}s on {result.device}")
        if isinstance(event, (ev.DecodeProgressed, ev.FeaturesProgressed, ev.BatchFinished)):
            self._progress(progress)

    def _files_done(self, what: str, event) -> None:
        """The end of decoding or feature extraction: time, cache use and the unreadable files."""
        from trainer.training import report

        cached = f", {event.from_cache:,} from cache" if event.from_cache else ""
        self._print(f"{what} in {event.seconds:.1f}s{cached}")
        if event.unreadable:
            self._print(report.format_skipped(event.unreadable).replace("skipped", "unreadable, skipped", 1))

    def _print(self, text: str, *, verbose: bool = False) -> None:
        if not text or (verbose and self.quiet):
            return
        self._clear()
        say(text, self.out)

    def _progress(self, progress) -> None:
        from trainer.common.progress import format_duration

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
        "paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)"
    )
    parser.add_argument("--model", type=Path, help="model file (default: the bundled default model)")
    parser.add_argument(
        "--csv",
        type=Path,
        metavar="OUT.csv",
        help="also write path,label,confidence,flag,error, and OUT.csv.json (model, version, date)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=256, help="images per batch (default: 256)"
    )
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="also write DIR/<name>.why.png (the answer's heat map over the image) and "
        "DIR/<name>.heat.png (the map alone, grey); existing files are never replaced",
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
    args = build_predict_parser().parse_args(argv)
    try:
        check_writable(args.csv)
        check_folder(args.explain)
        model_path = args.model or default_model_path()
        if args.model is None and not model_path.exists():
            raise FaceComicError(
                f"No default model is installed ({model_path} is missing); pass --model MODEL.safetensors."
            )
        from trainer.data.dataset import collect_images
        from trainer.prediction.predictor import Predictor

        predictor = Predictor.from_file(model_path)
        paths, skipped = collect_images(args.paths)
        for s in skipped:
            print(printable(f"{s.path}\tskipped\t{s.reason}"), file=sys.stderr)
        if not paths:
            raise FaceComicError("No images found in " + ", ".join(args.paths) + ".")
        predictions = []
        stdout = _PipeSafeWriter(sys.stdout)
        explain = _Explaining(predictor.loaded, args.explain) if args.explain else None
        for batch in predictor.predict_batches(paths, batch_size=args.batch_size):
            if explain is not None:
                explain.batch(paths[len(predictions) : len(predictions) + len(batch)], batch)
            for p in batch:
                if p.ok:
                    stdout.line(
                        for_stream(f"{p.source}	{p.label}	{p.confidence:.4f}	{p.flag}", sys.stdout)
                    )
                else:
                    print(printable(f"{p.source}\terror\t{p.error}"), file=sys.stderr)
            predictions.extend(batch)
        if args.csv:
            write_predictions_csv(args.csv, predictions, model_path)
        failed = sum(not p.ok for p in predictions)
        summary = f"{len(predictions) - failed:,} predicted"
        unsure = sum(p.unsure for p in predictions)
        if unsure:
            summary += f" ({unsure:,} unsure)"
        if failed:
            summary += f", {failed:,} unreadable"
        if explain is not None:
            summary += f"; {explain.written:,} heat maps written to {args.explain}"
        if args.csv:
            summary += f"; CSV written to {args.csv} (model, version and date in {sidecar_path(args.csv)})"
        print(printable(summary), file=sys.stderr)
        return EXIT_PARTIAL if failed else EXIT_OK
    except KeyboardInterrupt:
        print(
            "facecomic-predict: cancelled; no CSV was written (heat maps already written are complete).",
            file=sys.stderr,
        )
        return EXIT_CANCELLED
    except FaceComicError as err:
        print(printable(f"facecomic-predict: error: {err}"), file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(printable(f"facecomic-predict: error: {describe_os_error(err)}"), file=sys.stderr)
        return EXIT_USAGE


def check_folder(target: Path | None) -> None:
    """An output folder: created when missing; a file or an unwritable folder is refused."""
    if target is None:
        return
    if target.exists() and not target.is_dir():
        raise FaceComicError(f"{target} is a file; --explain needs a folder.")
    target.mkdir(parents=True, exist_ok=True)
    if not os.access(target, os.W_OK):
        raise FaceComicError(f"Cannot write in {target}: the folder is not writable.")


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
                print(printable(f"{path}\terror\tno heat map: {err.reason}"), file=sys.stderr)
                continue
            self.written += 1


class _PipeSafeWriter:
    """Stops printing, but keeps working, when stdout is closed early (``| head``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def line(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(text, file=self.stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            # Point stdout at /dev/null so the interpreter's final flush does not complain.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
