% rebase('layout.tpl', title=title)
<h2>{{title}}</h2>
<div class="error">{{message}}</div>
<p><a href="/public">Back to the public timeline</a></p>
