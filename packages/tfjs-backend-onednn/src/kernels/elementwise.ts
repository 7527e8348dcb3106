/** Broadcasting binary ops, unary ops, AddN and Softmax on float32 data. */
import { backend_util, util } from '@tensorflow/tfjs-core';
import { BINARY, UNARY } from '../native.js';
import { allocF32, allocI32, attr, input, size, type KernelArgs, type NativeKernel } from '../backend.js';

function binary(op: number) {
  return ({ inputs, backend }: KernelArgs) => {
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    const av = backend.f32(a);
    const bv = backend.f32(b);
    if (!av || !bv) return null;
    const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const out = allocF32(size(outShape));
    backend.native.binary(av, Int32Array.from(a.shape), bv, Int32Array.from(b.shape), out, op);
    return backend.output(out, outShape);
  };
}

type Params = (attrs: KernelArgs['attrs']) => [number, number];

const noParams: Params = () => [0, 0];

function unary(op: number, params: Params = noParams) {
  return ({ inputs, backend, attrs }: KernelArgs) => {
    const x = input(inputs, 'x');
    const xv = backend.f32(x);
    if (!xv) return null;
    const [alpha, beta] = params(attrs);
    const out = allocF32(xv.length);
    backend.native.unary(xv, out, op, alpha, beta);
    return backend.output(out, x.shape);
  };
}

function addN({ inputs, backend }: KernelArgs) {
  const tensors = Object.values(inputs).filter((t): t is NonNullable<typeof t> => t != null);
  const first = tensors[0];
  if (first == null) return null;
  const values: Float32Array[] = [];
  for (const t of tensors) {
    const v = backend.f32(t);
    if (!v || t.shape.length !== first.shape.length || t.shape.some((d, i) => d !== first.shape[i])) return null;
    values.push(v);
  }
  const out = allocF32(size(first.shape));
  backend.native.addN(out, ...values);
  return backend.output(out, first.shape);
}

function softmax({ inputs, backend, attrs }: KernelArgs) {
  const logits = input(inputs, 'logits');
  const v = backend.f32(logits);
  const rank = logits.shape.length;
  const dim = attr<number>(attrs, 'dim');
  if (!v || rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
  const cols = logits.shape[rank - 1]!;
  const rows = cols === 0 ? 0 : v.length / cols;
  const out = allocF32(v.length);
  backend.native.softmax(v, out, rows, cols);
  return backend.output(out, logits.shape);
}

/** GatherV2 with batchDims 0 on float32 / int32 data (model.fit's batch slicing). */
function gatherV2({ inputs, backend, attrs }: KernelArgs) {
  const x = input(inputs, 'x');
  const indices = input(inputs, 'indices');
  const batchDims = attr<number | undefined>(attrs, 'batchDims') ?? 0;
  if (batchDims !== 0 || indices.dtype !== 'int32' || (x.dtype !== 'float32' && x.dtype !== 'int32')) return null;
  const xv = backend.data.get(x.dataId).values;
  const iv = backend.data.get(indices.dataId).values;
  if (!(iv instanceof Int32Array)) return null;
  if (x.dtype === 'float32' ? !(xv instanceof Float32Array) : !(xv instanceof Int32Array)) return null;
  const axis = util.parseAxisParam(attr<number>(attrs, 'axis'), x.shape)[0]!;
  const dim = x.shape[axis]!;
  for (let i = 0; i < iv.length; i++) {
    const v = iv[i]!;
    if (v < 0 || v >= dim) return null; // the cpu kernel reports the bad index
  }
  const outer = size(x.shape.slice(0, axis));
  const inner = size(x.shape.slice(axis + 1));
  const outShape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  const n = size(outShape);
  const out = x.dtype === 'float32' ? allocF32(n) : allocI32(n);
  backend.native.gather(xv as Float32Array | Int32Array, iv, out, outer, dim, inner);
  return backend.makeTensorInfo(outShape, x.dtype, out);
}

export const elementwiseKernels: NativeKernel[] = [
  { kernelName: 'GatherV2', kernelFunc: gatherV2 },
  { kernelName: 'Add', kernelFunc: binary(BINARY.add) },
  { kernelName: 'Sub', kernelFunc: binary(BINARY.sub) },
  { kernelName: 'Multiply', kernelFunc: binary(BINARY.mul) },
  { kernelName: 'RealDiv', kernelFunc: binary(BINARY.div) },
  { kernelName: 'Maximum', kernelFunc: binary(BINARY.max) },
  { kernelName: 'Minimum', kernelFunc: binary(BINARY.min) },
  { kernelName: 'SquaredDifference', kernelFunc: binary(BINARY.squaredDifference) },
  { kernelName: 'Pow', kernelFunc: binary(BINARY.pow) },
  { kernelName: 'Relu', kernelFunc: unary(UNARY.relu) },
  { kernelName: 'Relu6', kernelFunc: unary(UNARY.relu6) },
  { kernelName: 'Step', kernelFunc: unary(UNARY.step, (a) => [attr<number>(a, 'alpha') ?? 0, 0]) },
  { kernelName: 'Sqrt', kernelFunc: unary(UNARY.sqrt) },
  { kernelName: 'Square', kernelFunc: unary(UNARY.square) },
  { kernelName: 'Exp', kernelFunc: unary(UNARY.exp) },
  { kernelName: 'Log', kernelFunc: unary(UNARY.log) },
  { kernelName: 'Neg', kernelFunc: unary(UNARY.neg) },
  { kernelName: 'Floor', kernelFunc: unary(UNARY.floor) },
  { kernelName: 'Ceil', kernelFunc: unary(UNARY.ceil) },
  { kernelName: 'Abs', kernelFunc: unary(UNARY.abs) },
  { kernelName: 'Sign', kernelFunc: unary(UNARY.sign) },
  { kernelName: 'Sigmoid', kernelFunc: unary(UNARY.sigmoid) },
  { kernelName: 'Tanh', kernelFunc: unary(UNARY.tanh) },
  { kernelName: 'Rsqrt', kernelFunc: unary(UNARY.rsqrt) },
  { kernelName: 'Reciprocal', kernelFunc: unary(UNARY.reciprocal) },
  { kernelName: 'Log1p', kernelFunc: unary(UNARY.log1p) },
  { kernelName: 'Expm1', kernelFunc: unary(UNARY.expm1) },
  { kernelName: 'Softplus', kernelFunc: unary(UNARY.softplus) },
  { kernelName: 'Elu', kernelFunc: unary(UNARY.elu) },
  { kernelName: 'LeakyRelu', kernelFunc: unary(UNARY.leakyRelu, (a) => [attr<number>(a, 'alpha'), 0]) },
  {
    kernelName: 'ClipByValue',
    kernelFunc: unary(UNARY.clip, (a) => [attr<number>(a, 'clipValueMin'), attr<number>(a, 'clipValueMax')]),
  },
  { kernelName: 'AddN', kernelFunc: addN },
  { kernelName: 'Softmax', kernelFunc: softmax },
];
