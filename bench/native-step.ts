import * as tf from '@tensorflow/tfjs';
import { registerOnednnBackend, OnednnSequentialStep, type SequentialLayer } from '../packages/tfjs-backend-onednn/src/index.js';
const threads = Number(process.env.T ?? 2);
await registerOnednnBackend({ threads });
await tf.setBackend('onednn');
const B = 250;
const v = (s: number[]) => tf.variable(tf.randomUniform(s, -0.1, 0.1));
const act = process.env.ACT ? { l1: 0, l2: 0.01 } : null;
const kreg = process.env.KREG ? { l1: 0.01, l2: 0.01 } : null;
const pen = { activityPenalty: act, kernelPenalty: kreg, biasPenalty: kreg };
const layers: SequentialLayer[] = [
  { type: 'conv2d', kernel: v([3, 3, 1, 32]), bias: v([32]), strides: [1, 1], padding: 'valid', activation: 'relu', ...pen },
  { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
  { type: 'dropout', rate: 0.25 },
  { type: 'conv2d', kernel: v([3, 3, 32, 64]), bias: v([64]), strides: [1, 1], padding: 'valid', activation: 'relu', ...pen },
  { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
  { type: 'dropout', rate: 0.25 },
  { type: 'flatten' },
  { type: 'dense', kernel: v([1600, 256]), bias: v([256]), activation: 'relu', ...pen },
  { type: 'dense', kernel: v([256, 47]), bias: v([47]), activation: 'softmax', ...pen },
];
const step = OnednnSequentialStep.plan([28, 28, 1], layers);
if (typeof step === 'string') throw new Error(step);
const x = tf.randomUniform([B, 28, 28, 1]);
const y = tf.oneHot(tf.randomUniform([B], 0, 47, 'int32'), 47).toFloat();
const keys = [1, 2, 3, 4, 5, 6, 7, 8, 9];
// OPT=1: also apply the gradients with tfjs Adam (the onednn backend's fused kernel), as the service loop does.
const opt: tf.Optimizer | null = process.env.OPT ? tf.train.adam(0.001) : null;
const names = step.variables.map((v) => (v as tf.Variable).name);
const once = () => {
  const r = step.run(x, y, keys);
  if (opt) opt.applyGradients(Object.fromEntries(r.grads.map((g, i) => [names[i]!, g])));
  tf.dispose(r.grads);
};
for (let i = 0; i < 3; i++) once();
const N = Number(process.env.N ?? 20);
const c0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < N; i++) once();
const ms = (performance.now() - t0) / N;
const c = process.cpuUsage(c0);
console.log(
  `threads ${threads}: ${ms.toFixed(1)} ms/step wall, ${((c.user + c.system) / 1000 / N).toFixed(1)} CPU ms/step, ${((B * 1000) / ms).toFixed(0)} samples/s`,
);
if (process.env.ONEDNN_STEP_PROFILE === '1') console.log(step.profile());
