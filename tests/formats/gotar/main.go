// The Go reference reader for the tar differential harness: Go's archive/tar, read the
// way a container runtime applies a layer (containerd, CRI-O and umoci all build on
// it). Reads an uncompressed tar from stdin and prints, as JSON, the state a runtime
// would leave: every non-directory path (cleaned as the runtime roots it) mapped to
// "file:SHA256" or to its kind ("symlink", "other"), later entries replacing earlier
// ones, hard links taking their target's content. A read error prints {"error": ...}.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path"
	"strings"
)

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func main() {
	reader := tar.NewReader(os.Stdin)
	state := map[string]string{}
	out := json.NewEncoder(os.Stdout)
	for {
		header, err := reader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			out.Encode(map[string]string{"error": err.Error()})
			return
		}
		name := clean(header.Name)
		switch header.Typeflag {
		case tar.TypeDir:
			delete(state, name)
		case tar.TypeReg, tar.TypeRegA:
			hash := sha256.New()
			if _, err := io.Copy(hash, reader); err != nil {
				out.Encode(map[string]string{"error": err.Error()})
				return
			}
			state[name] = "file:" + hex.EncodeToString(hash.Sum(nil))
		case tar.TypeLink:
			target, ok := state[clean(header.Linkname)]
			if !ok {
				target = "other"
			}
			state[name] = target
		case tar.TypeSymlink:
			state[name] = "symlink"
		default:
			state[name] = "other"
		}
	}
	// What follows the end of the archive is not read by archive/tar; say so, as a
	// runtime that stops there would not see it.
	rest, _ := io.Copy(io.Discard, os.Stdin)
	out.Encode(map[string]interface{}{"files": state, "trailing": rest})
}
