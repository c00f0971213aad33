from kplug_lab.types import KERNEL_DTS

print(KERNEL_DTS)
