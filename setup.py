"""The one compiled module; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "drainpipe.ingest._scan",
            ["drainpipe/ingest/_scan.c"],
            extra_compile_args=["-O2"],
            # Without a C compiler drainpipe still installs and runs its Python readers.
            optional=True,
        )
    ]
)
