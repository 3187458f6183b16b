"""Client-side rendering helpers: structured results in, rich renderables out."""
