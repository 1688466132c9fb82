/** `template` with `{text}` replaced by the text; a template without `{text}` is a prefix (a sentence-transformers prompt, a FlagEmbedding instruction). */
export function applyTemplate(text: string, template?: string): string {
  if (!template) return text;
  // A function replacement: `$&`, `$$` in a text are text, not replacement patterns.
  return template.includes('{text}') ? template.replaceAll('{text}', () => text) : template + text;
}
