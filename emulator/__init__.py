"""A vLLM-compatible emulator: the OpenAI API, vLLM's chunk shapes and metrics, no GPU.

It shares no code with the client in ``users/``: each checks the other.
"""
