// Package mcp is the Model Context Protocol face of the runner: an MCP server, on the official Go
// SDK (github.com/modelcontextprotocol/go-sdk), whose tools run code in gkexec's sandboxes. It is
// what `gkexec mcp` serves, over stdio or streamable HTTP, to any MCP client: ADK's McpToolset,
// LangGraph, the OpenAI Agents SDK, desktop and coding assistants.
//
// The tools:
//
//	run_code          run a program in a fresh sandbox: stdout, stderr, exit code, output files
//	open_session      start one live interpreter whose variables and files persist
//	run_in_session    run code in it
//	upload_file       write a file into a session's workspace
//	download_file     read a file from a session's workspace
//	close_session     end it and delete its sandbox
//	describe_sandbox  the languages, limits and warm pool the namespace offers
//
// What the code did is a result: a non-zero exit, a traceback, a timeout, an out-of-memory kill.
// Anything that kept it from running is a tool error (IsError) whose text names a stable code
// (server's vocabulary: session_not_found, session_busy, forbidden, ...), says whether trying
// again can help, and what to do next. Output files come back as content: images as MCP image
// content, anything else as an embedded resource. While code runs, a client that sent a progress
// token gets its output in progress notifications.
//
//	r, _ := runner.New(runner.Options{Namespace: "agent-sandbox"})
//	s, _ := mcp.New(mcp.Options{Runner: r})
//	err := s.ServeStdio(ctx, os.Stdin, os.Stdout)       // or: http.Handle("/", s.Handler(token))
//
// Languages are a table (languages.go) of the runner's: Python, bash and JavaScript, each with
// the programs upload_file and download_file run in its sessions; the tools' schemas and
// descriptions are built from it.
package mcp
