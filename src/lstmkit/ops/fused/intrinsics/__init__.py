"""LLVM intrinsics the compiled kernels inline: atomics (:mod:`.atomics`), SIMD register blocks (:mod:`.simd`), "
"vectorised cells (:mod:`.lanes`)."""
