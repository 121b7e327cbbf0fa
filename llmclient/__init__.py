"""The client: HTTP/1.1 and SSE, the measurement rules, and the server's control plane.

Knows nothing of Locust (``users/`` is the Locust layer on top of it). Layers, bottom up:

- ``errors``: the three failures (bad setup, a broken connection, broken framing);
- ``stamps``: reads dated by the kernel's receive timestamps;
- ``framing`` (sans-IO): HTTP/1.1 response heads and bodies; ``sse``: Server-Sent Events;
- ``measure``: one request's record and the rules that fill it (vLLM ``bench serve``);
- ``http``: the blocking keep-alive connection; ``reactor``: one greenlet reading every stream;
- ``stream``: one timed streaming request; ``transports``: socket and openai-SDK transports;
- ``control``: models, ``/tokenize``, cache reset, warm-up; ``server_metrics``: ``/metrics``;
- ``schema``: the per-request row (columns, types, encode/decode).
"""
