/**
 * Reverse-mode differentiation over a Graph. Nodes are appended in topological order, so
 * walking them backwards visits every consumer before its producer; each node on a path from
 * a parameter to the output gets its op's rule from `ops.ts`, and gradients reaching one value
 * from several consumers are summed. The backward nodes go into the same graph, so one ORT
 * run computes the forward pass, the loss and every gradient.
 */
import type { Graph, Value } from './graph.js';
import { add, GRADIENTS, scalar } from './ops.js';

/**
 * Appends the gradient of `output` with respect to each of `wrt`.
 * `seed` is the upstream gradient dL/d(output) (a vector-Jacobian product); without it,
 * `output` must be a scalar and the seed is 1.
 * @example
 *   const [dW] = gradients(graph, loss, [w]);
 *   graph.output(dW, 'grad_w');
 */
export function gradients(graph: Graph, output: Value, wrt: Value[], seed?: Value): Value[] {
  if (!seed && output.rank !== 0) throw new Error(`gradients: output ${output.name} has rank ${output.rank}; give a seed for non-scalar outputs`);
  const nodes = graph.nodes.slice(); // the forward part only; rules append after it
  // Values that depend on a parameter (forward reach) …
  const live = new Set(wrt.map((v) => v.name));
  for (const n of nodes) if (n.inputs.some((i) => live.has(i))) n.outputs.forEach((o) => live.add(o));
  if (!live.has(output.name)) throw new Error(`gradients: ${output.name} does not depend on any parameter`);
  // … and that the output depends on (backward reach).
  const needed = new Set([output.name]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (nodes[i]!.outputs.some((o) => needed.has(o))) nodes[i]!.inputs.forEach((x) => x && needed.add(x));
  }

  const grads = new Map<string, Value>();
  grads.set(output.name, seed ?? scalar(output, 1));
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    const dys = n!.outputs.map((o) => grads.get(o));
    if (dys.every((d) => d === undefined)) continue;
    const onPath = n!.inputs.map((x) => !!x && live.has(x) && needed.has(x) && graph.values.get(x)!.dtype === 'float32');
    if (!onPath.some(Boolean)) continue;
    const rule = GRADIENTS.get(n!.op);
    if (!rule) throw new Error(`gradients: no gradient rule for ${n!.op} (node output ${n!.outputs[0]})`);
    const dxs = rule(
      { inputs: n!.inputs.map((x) => (x ? graph.values.get(x) : undefined)), outputs: n!.outputs.map((o) => graph.values.get(o)!), attrs: n!.attrs },
      dys,
    );
    n!.inputs.forEach((x, j) => {
      const dx = dxs[j];
      if (!x || !onPath[j] || !dx) return;
      const prev = grads.get(x);
      grads.set(x, prev ? add(prev, dx) : dx);
    });
  }
  return wrt.map((w) => {
    const g = grads.get(w.name);
    if (!g) throw new Error(`gradients: ${w.name} does not reach ${output.name}`);
    return g;
  });
}
