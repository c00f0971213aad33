// Last part: the host's entry points are complete; a plugin cannot add, replace or remove one.
Object.freeze(K);
