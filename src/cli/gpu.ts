/**
 * `celforge gpu install`: downloads onnxruntime-node's CUDA provider (Linux
 * x64; a few hundred megabytes from NuGet), which celforge's install leaves
 * out, then says whether it loads. Elsewhere it says what the platform has.
 */
import { cudaInstallCommand, cudaInstallState, cudaStatus, runCudaInstall } from '../adapters/onnx-providers.ts';
import { CelforgeError } from '../errors.ts';

export async function gpuCommand(action: string): Promise<number> {
  if (action !== 'install') throw new CelforgeError('CONFIG_INVALID', `celforge gpu: "${action}" is not install`);
  const state = cudaInstallState();
  if (state.kind === 'unsupported') {
    process.stdout.write(`nothing to install: ${describe(await cudaStatus())}\n`);
    return 0;
  }
  const install = cudaInstallCommand();
  process.stdout.write(`installing the CUDA provider: ${[install.command, ...install.args].join(' ')} (ONNXRUNTIME_NODE_INSTALL=${install.env.ONNXRUNTIME_NODE_INSTALL})\n`);
  const { code } = await runCudaInstall(install);
  if (code !== 0) {
    throw new CelforgeError('FILE_NOT_FOUND', `onnxruntime-node's install script ended with exit code ${code} (its message is above); check the network, then run "celforge gpu install" again`);
  }
  const status = await cudaStatus();
  process.stdout.write(status.kind === 'loads'
    ? "the CUDA provider loads; with inference.providers 'auto' (the default) models run on the GPU\n"
    : `${describe(status)}\n`);
  return status.kind === 'loads' ? 0 : 1;
}

function describe(status: Awaited<ReturnType<typeof cudaStatus>>): string {
  return status.kind === 'loads' ? 'CUDA loads' : status.detail;
}
