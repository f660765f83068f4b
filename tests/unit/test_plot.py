"""The learning-curve PNG: valid, written each round under the state dir, drawn even with no rounds."""

import io

from PIL import Image

from daemon.plot import render_curve


def test_plot_is_a_png_and_written_each_round(finished_run):
    _, daemon, _ = finished_run
    image = Image.open(io.BytesIO(render_curve(daemon.status())))
    assert image.format == "PNG" and image.size == (800, 450)
    written = daemon.store.dir / "learning-curve.png"
    assert Image.open(written).format == "PNG"


def test_plot_without_rounds():
    image = Image.open(io.BytesIO(render_curve({"history": [], "signals": {}, "stop": {}})))
    assert image.format == "PNG"
