/**
 * Whether Regula's oneDNN backend can run here: its addon loads (libdnnl-dev installed and the addon
 * built). With ONEDNN_REQUIRED=1 (CI) it counts as available, so a broken build fails the tests
 * that need it instead of skipping them.
 */
export async function onednnAvailable(): Promise<boolean> {
  if (process.env.ONEDNN_REQUIRED === '1') return true;
  try {
    const specifier: string = '@regula/tfjs-backend-onednn';
    const mod = (await import(specifier)) as { loadNative: () => unknown };
    mod.loadNative();
    return true;
  } catch {
    return false;
  }
}
