"""Make the registry's CUDA build of torchvision import next to CPU torch (CI only).

torchvision 0.28.0 exists on the registry only as a CUDA build. Its _C.so links
libc10_cuda.so and libtorch_cuda.so (and libcudart.so.13), which a CPU torch does
not ship, so `import torchvision` fails with "operator torchvision::nms does not
exist". We compile small stand-in libraries that define every symbol _C.so wants
from them (functions abort if ever called: they are only reached on CUDA paths)
and point _C.so's rpath at them with patchelf. Users on Colab, Binder or with
PyTorch's own CPU wheels never need this.

Usage: python .ci/repair_torchvision.py   (with the target environment's python)
"""

import importlib.util
import pathlib
import subprocess
import sys
import sysconfig

CHECK = "import torch, torchvision, torchvision.ops as ops; ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)"


def imports_cleanly() -> bool:
    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True).returncode == 0


def dynamic_symbols(path: pathlib.Path, *flags: str) -> list[str]:
    out = subprocess.run(["nm", "-D", *flags, str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def stub_source(symbols: list[str], data_symbols: set[str]) -> str:
    lines = ["#include <stdlib.h>"]
    for name in symbols:
        if name in data_symbols:
            lines.append(f"void *{name}[4] = {{0}};")  # e.g. CUDACachingAllocator::allocator (an atomic pointer)
        else:
            lines.append(f"void {name}(void) {{ abort(); }}")
    return "\n".join(lines) + "\n"


def main() -> None:
    if imports_cleanly():
        print("torchvision already imports: nothing to repair")
        return
    spec = importlib.util.find_spec("torchvision")
    tv_dir = pathlib.Path(spec.origin).parent
    torch_lib = pathlib.Path(importlib.util.find_spec("torch").origin).parent / "lib"
    ext = tv_dir / "_C.so"
    defined = set()
    for lib in torch_lib.glob("*.so*"):
        defined.update(dynamic_symbols(lib, "--defined-only"))
    undefined = [s for s in dynamic_symbols(ext, "--undefined-only") if "@" not in s and not s.startswith(("_ITM", "__gmon"))]
    wanted = sorted(s for s in undefined if s not in defined and "cuda" in s.lower())
    data = {s for s in wanted if "CUDACachingAllocator9allocatorE" in s}
    stub_dir = tv_dir / "_cpu_stubs"
    stub_dir.mkdir(exist_ok=True)
    (stub_dir / "stub.c").write_text(stub_source(wanted, data))
    (stub_dir / "empty.c").write_text("/* only the name is needed */\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", stub_dir / "libc10_cuda.so", stub_dir / "stub.c"], check=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", stub_dir / "libtorch_cuda.so", stub_dir / "empty.c"], check=True)
    ldd = subprocess.run(["ldd", str(ext)], capture_output=True, text=True, env={"LD_LIBRARY_PATH": str(torch_lib)}).stdout
    if "libcudart.so.13 => not found" in ldd:
        cudart = sorted({s.split("@")[0] for s in dynamic_symbols(ext, "--undefined-only") if "@libcudart" in s})
        (stub_dir / "cudart.c").write_text("".join(f"int {s}(void) {{ return 0; }}\n" for s in cudart))
        (stub_dir / "cudart.map").write_text("libcudart.so.13 { global: *; };\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-Wl,--version-script=" + str(stub_dir / "cudart.map"),
                        "-Wl,-soname,libcudart.so.13", "-o", stub_dir / "libcudart.so.13", stub_dir / "cudart.c"], check=True)
    patchelf = pathlib.Path(sysconfig.get_path("scripts")) / "patchelf"
    old = subprocess.run([patchelf, "--print-rpath", ext], capture_output=True, text=True, check=True).stdout.strip()
    if "_cpu_stubs" not in old:
        subprocess.run([patchelf, "--set-rpath", f"$ORIGIN/_cpu_stubs:{old}", ext], check=True)
    if not imports_cleanly():
        sys.exit("torchvision still does not import after the repair")
    print(f"torchvision repaired: stubs for {len(wanted)} CUDA symbols in {stub_dir}")


if __name__ == "__main__":
    main()
