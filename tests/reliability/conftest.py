"""Reliability tests reuse the generation fixtures: a real OpenAI-compatible server on 127.0.0.1 and small
projects whose generator talks to it through distilabel's OpenAILLM."""

from tests.generation.conftest import gproj, key_env, llm_server  # noqa: F401 - fixtures
