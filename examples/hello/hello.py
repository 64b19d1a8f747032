# A first program for the sandbox: it reports the kernel it sees, who it runs as, and what it may touch.
import os
import subprocess

print("kernel: ", open("/proc/version").read().strip())
boot = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()
print("boot:   ", boot[0] if boot else "(no dmesg)")
print("user:    uid=%d gid=%d" % (os.getuid(), os.getgid()))
try:
    open("/etc/hello", "w")
except OSError as e:
    print("rootfs: ", e.strerror)
print("cwd:    ", os.getcwd())
