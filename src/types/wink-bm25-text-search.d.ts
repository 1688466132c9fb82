/** The part of wink-bm25-text-search's API src/search/bm25.ts uses (the package ships no types). */
declare module 'wink-bm25-text-search' {
  interface Bm25Engine {
    defineConfig(config: { fldWeights: Record<string, number>; bm25Params?: { k1?: number; b?: number; k?: number } }): boolean;
    definePrepTasks(tasks: ((input: never) => unknown)[]): number;
    addDoc(doc: Record<string, string>, id: number | string): number;
    consolidate(freqPrecision?: number): boolean;
    search(text: string, limit?: number): [string, number][];
  }
  const bm25: () => Bm25Engine;
  export default bm25;
}
