"""Packaging a recorded run as a Docker build context (and image) that re-creates it."""

from ml_experiment.package._context import Package, build_package, package_run

__all__ = ["Package", "build_package", "package_run"]
