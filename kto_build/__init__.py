"""kto-build: a declarative, dbt-style build system for KTO and DPO preference datasets."""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: `import kto_build` stays cheap
    if name == "Project":
        from .project import Project

        return Project
    raise AttributeError(name)


__all__ = ["Project", "__version__"]
