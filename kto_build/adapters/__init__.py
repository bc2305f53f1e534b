"""Adapters: the only modules that import heavy third-party SDKs.

``distilabel_llm`` wraps distilabel's LLM classes for the generation node;
``argilla_backend`` wraps the argilla SDK for the annotation node. Both are
imported lazily, inside a node's ``run``.
"""
