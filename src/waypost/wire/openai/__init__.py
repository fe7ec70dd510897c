"""The OpenAI dialect: Chat Completions (``chat``, the import point), legacy Completions
(``completions``) and Embeddings (``embeddings``)."""
