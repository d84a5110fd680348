"""The vLLM engine (`engine.create_engine`), imported only when chosen: `engine` is the only
module of the project that imports vLLM; `settings`, `gguf_to_hf` and `hf_chat` do not."""
