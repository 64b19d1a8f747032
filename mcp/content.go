package mcp

import (
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/runner"
)

// imageTypes are the images a client can show a model, recognised by their bytes (an extension
// can lie): an output file of one of these types comes back as image content. SVG is text and
// comes back as a resource.
var imageTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// fileContent is a file as MCP content, and its MIME type: an image (imageTypes) as image
// content, unless it was truncated (a partial image is no image); anything else as an embedded
// resource at uri, its text when it is UTF-8, else its bytes.
func fileContent(uri string, data []byte, truncated bool) (sdk.Content, string) {
	mimeType := mimeTypeOf(uri, data)
	if imageTypes[mimeType] && !truncated {
		return &sdk.ImageContent{Data: data, MIMEType: mimeType}, mimeType
	}
	rc := &sdk.ResourceContents{URI: uri, MIMEType: mimeType}
	if utf8.Valid(data) {
		rc.Text = string(data)
	} else {
		rc.Blob = data
	}
	return &sdk.EmbeddedResource{Resource: rc}, mimeType
}

// mimeTypeOf is the type of a file: by its bytes for images, else by its name's extension, else
// text/plain for UTF-8 and application/octet-stream for anything else.
func mimeTypeOf(name string, data []byte) string {
	if sniffed := http.DetectContentType(data); imageTypes[sniffed] {
		return sniffed
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	if utf8.Valid(data) {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// outputURI names an output file: where it was in the sandbox.
func outputURI(rel string) string { return fileURI(runner.OutputDir + "/" + rel) }

// workspaceURI names a file of the working directory.
func workspaceURI(rel string) string { return fileURI(runner.WorkDir + "/" + rel) }

func fileURI(p string) string {
	return (&url.URL{Scheme: "file", Path: p}).String()
}

// dropDownloads leaves out of a session execution's files the copy a download made, which is
// the download's answer (downloadDir).
func dropDownloads(files []runner.File) []runner.File {
	var kept []runner.File
	for _, f := range files {
		if !strings.HasPrefix(f.Path, downloadDir+"/") {
			kept = append(kept, f)
		}
	}
	return kept
}
