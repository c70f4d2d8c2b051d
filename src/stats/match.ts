// Pairs objects of two polls of the same load balancer. haproxy lists
// objects in config order, so the same index almost always holds the same
// object; a map is built only when it does not (config changed).

export function matcher<T>(prev: readonly T[], key: (x: T) => string): (x: T, i: number) => T | undefined {
  let map: Map<string, T> | undefined;
  return (x, i) => {
    const k = key(x);
    const p = prev[i];
    if (p !== undefined && key(p) === k) return p;
    map ??= new Map(prev.map((e) => [key(e), e]));
    return map.get(k);
  };
}
