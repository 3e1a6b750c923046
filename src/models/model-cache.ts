/**
 * Loaded models kept for the daemon's life, so that each job does not load
 * hundreds of megabytes again. Keyed by what was loaded and how (file,
 * execution providers); a load that failed is forgotten, to be tried again.
 */
export class ModelCache {
  readonly #loaded = new Map<string, Promise<unknown>>();

  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    let loading = this.#loaded.get(key) as Promise<T> | undefined;
    if (!loading) {
      loading = load();
      loading.catch(() => this.#loaded.delete(key));
      this.#loaded.set(key, loading);
    }
    return loading;
  }

  clear(): void {
    this.#loaded.clear();
  }
}
