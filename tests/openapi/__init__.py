"""OpenAI's OpenAPI spec (the subset chainvoice uses) and a validator for it."""
