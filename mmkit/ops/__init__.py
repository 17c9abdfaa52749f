"""Operations: pre-deploy checks, soak, go/no-go, release bundles, secrets rotation.

Orchestrates the core and the edges (config, artifacts, audit); imports nothing from ``cli``.
"""
